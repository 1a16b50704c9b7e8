from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Sessions, conversations and credentials"

    def ready(self) -> None:
        # Registers the Celery tasks in every process (web too, not only workers): the services send them by name
        # through agents_app.queueing, which runs them in place in eager mode. Imported here, not at the top: the
        # tasks import models, which cannot load before the app registry is ready.
        from sessions_app import tasks  # noqa: F401
