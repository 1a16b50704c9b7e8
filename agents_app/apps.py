from django.apps import AppConfig


class AgentsAppConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agents"

    def ready(self) -> None:
        import logging

        from agents_app import sandbox
        from mcpagent.health import register_check

        sandbox.check_configuration()
        register_check("sandbox", sandbox.status)
        if not sandbox.enabled():
            logging.getLogger(__name__).warning(
                "SANDBOX=none: MCP servers run UNSANDBOXED, with this host's files, network and processes in reach")
