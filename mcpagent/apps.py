from django.apps import AppConfig


class McpagentConfig(AppConfig):
    name = "mcpagent"
    verbose_name = "API access"

    def ready(self) -> None:
        from mcpagent import request_logging  # noqa: F401  connects its django-structlog signal receivers
