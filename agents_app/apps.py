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
        from agents_app.models import AgentRun, AgentTrigger
        from mcpagent.encrypted_tables import encrypted_table_register
        from mcpagent.health import register_check

        sandbox.check_configuration()
        register_check("sandbox", sandbox.status)
        # Key rotation re-encrypts them too (a pasted secret of a queued run, a webhook's signing secret).
        encrypted_table_register("agent_runs", AgentRun, ("message_sealed",))
        encrypted_table_register("agent_triggers", AgentTrigger, ("signing_secret",))
        if not sandbox.enabled():
            logging.getLogger(__name__).warning(
                "SANDBOX=none: MCP servers run UNSANDBOXED, with this host's files, network and processes in reach")
