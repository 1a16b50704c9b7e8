from django.apps import AppConfig


class McpagentConfig(AppConfig):
    name = "mcpagent"
    verbose_name = "API access"
