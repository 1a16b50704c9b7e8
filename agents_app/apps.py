import logging

from django.apps import AppConfig


class AgentsAppConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents_app import sandbox
        # Registers the Celery tasks in every process (web too, not only workers): agents_app.queueing sends them
        # by name through the registry, which runs them in place in eager mode.
        from agents_app import tasks  # noqa: F401
        from mcpagent.health import register_check

        sandbox.check_configuration()
        register_check("sandbox", sandbox.status)
        if not sandbox.enabled():
            logging.getLogger(__name__).warning(
                "SANDBOX=none: MCP servers run UNSANDBOXED, with this host's files, network and processes in reach")
