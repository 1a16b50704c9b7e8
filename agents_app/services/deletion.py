"""Agent deletion: the agent with its runs, turns, credentials and files, and any run under way stopped."""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents_app.models import Agent, AgentRun
from agents_app.runtime import warm_servers_drop
from agents_app.selectors import agent_get
from mcpagent.models import ApiClient
from mcpagent.vault.store import credentials_for_agent_delete

logger = logging.getLogger(__name__)


@transaction.atomic
def agent_delete(*, client: ApiClient, agent_id: Any, actor: Any = None) -> None:
    """Delete the client's agent with its runs, turns, and every credential and file it holds (each deletion
    audited). A queued or running run is marked failed first: its worker sees that and drops the outcome
    instead of writing turns for an agent that is gone (its servers stop when the run ends)."""
    agent = agent_get(client=client, agent_id=agent_id)
    # Locked first, so no credential can be handed to it (credentials_extend_ttl locks it too) while it goes.
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    AgentRun.objects.filter(agent=agent, status__in=[AgentRun.Status.QUEUED, AgentRun.Status.RUNNING]).update(
        status=AgentRun.Status.FAILED, finished_at=timezone.now(), message_sealed=None,
        error={"server": None, "code": "agent_deleted", "message": "The agent was deleted.", "hint": ""},
    )
    counts = credentials_for_agent_delete(client=client, agent=agent, actor=actor or client, reason="agent_delete")
    deleted_id = agent.id
    agent.delete()
    # This process's warm servers of the agent; workers notice within AGENT_WARM_CHECK_SECONDS.
    transaction.on_commit(lambda: warm_servers_drop(deleted_id))
    logger.info("agent %s deleted with %d credential(s) and %d file(s)", deleted_id, counts["credentials"],
                counts["files"])
