from django.apps import AppConfig


class OpsAppConfig(AppConfig):
    name = "ops_app"
    verbose_name = "Operations"
