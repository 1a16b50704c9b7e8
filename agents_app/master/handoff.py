"""From a session whose credentials are complete to a validated agent (the chat flow's last step)."""

import logging

from agents_app.master.plan import Plan
from mcpagent.errors import ApplicationError

logger = logging.getLogger(__name__)


def agent_create_for_session(*, session_id) -> str | None:
    """Create the agent for the session's plan through the agent service, validate it by starting its servers,
    and record the outcome on the session. Returns the agent id, or None if it could not be created."""
    from agents_app.services import agent_create_for_catalogue_servers, agent_validate
    from sessions_app.models import Session
    from sessions_app.services import session_agent_finished

    session = Session.objects.select_related("client").get(pk=session_id)
    plan = Plan.from_dict(session.context.get("plan") or {})
    workflow = [
        f"{step.action}" + (f" (server {step.server}, tool {step.tool})" if step.server and step.tool else
                            f" (server {step.server})" if step.server else "")
        for step in plan.workflow
    ]
    try:
        agent = agent_create_for_catalogue_servers(
            client=session.client, session=session, server_slugs=plan.server_slugs(),
            user_prompt=session.context.get("request") or plan.request, workflow=workflow,
        )
    except ApplicationError as exc:
        session_agent_finished(session_id=session.id, agent_id=None, ok=False, error=exc.message)
        return None
    agent = agent_validate(agent_id=agent.id)
    error = ""
    if agent.status != agent.Status.READY:
        failure = agent.error or {}
        error = " ".join(part for part in (failure.get("message", "validation failed"), failure.get("hint", "")) if part)
    session_agent_finished(session_id=session.id, agent_id=agent.id, ok=not error, error=error)
    return str(agent.id)
