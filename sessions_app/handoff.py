"""From a session whose credentials are complete to a validated agent (the chat flow's last step)."""

import logging

from django.conf import settings

from agents_app.master.plan import Plan
from agents_app.master.recurrence import in_timezone, schedule_to_apply
from agents_app.models import Agent
from agents_app.remote_auth import authorization_prepare
from agents_app.services import (
    agent_create_for_catalogue_servers, agent_revalidate, agent_schedule_set, agent_stored_credential_keys,
    agent_validate, catalogue_servers,
)
from mcpagent.errors import ApplicationError
from sessions_app.models import Session
from sessions_app import services
from sessions_app.replies import agent_failure_text

logger = logging.getLogger(__name__)


def agent_create_for_session(*, session_id) -> str | None:
    """Create the agent for the session's plan through the agent service, validate it by starting its servers,
    and record the outcome on the session. Returns the agent id, or None if it could not be created.

    A retry (the session's last agent failed, and the plan's servers and the collected credential names are
    the same) validates that agent again instead of creating another agent."""
    session = Session.objects.select_related("client").get(pk=session_id)
    plan = Plan.from_dict(session.context.get("plan") or {})
    workflow = [_step_text(step) for step in plan.workflow]
    try:
        failed = _agent_to_retry(session, plan)
        if failed is not None:
            agent = agent_revalidate(agent_id=failed.id, actor=session.client)
        else:
            agent = agent_create_for_catalogue_servers(
                client=session.client, session=session, server_slugs=plan.server_slugs(),
                user_prompt=session.context.get("request") or plan.request, workflow=workflow,
            )
            agent = agent_validate(agent_id=agent.id)
    except ApplicationError as exc:
        services.session_agent_finished(session_id=session.id, agent_id=None, ok=False, error=exc.message)
        return None
    error = "" if agent.status == agent.Status.READY else agent_failure_text(agent.error or {})
    if not error:
        _schedule_apply(session, plan, agent)
    elif not settings.OAUTH_REDIRECT_URL and (callback := session.context.get("oauth_redirect_uri")):
        # Here, once (agent_validate did it already with OAUTH_REDIRECT_URL): the session's GET then makes the
        # links from what this stored, without network.
        try:
            authorization_prepare(agent, redirect_uri=callback)
        except ApplicationError as exc:  # the chat's next POST prepares again
            logger.info("session %s: remote servers not prepared for authorization: %s", session.id, exc.code)
    services.session_agent_finished(session_id=session.id, agent_id=agent.id, ok=not error, error=error)
    return str(agent.id)


def _schedule_apply(session, plan: Plan, agent) -> None:
    """Give the ready agent the schedule the planner proposed (in the client's time zone) or the one the client
    chose instead; nothing if the client declined it (see recurrence.schedule_to_apply)."""
    schedule = schedule_to_apply(in_timezone(plan.schedule, session.context.get("timezone") or "UTC"),
                                 session.context.get("schedule_choice"))
    if not schedule:
        return
    try:
        agent_schedule_set(agent=agent, cron=schedule.get("cron"), interval_seconds=schedule.get("interval_seconds"),
                           timezone_name=schedule.get("timezone") or "UTC")
    except ApplicationError as exc:  # checked when proposed or chosen; logged rather than failing a ready agent
        logger.warning("agent %s: its proposed schedule was not set: %s", agent.id, exc.message)


def _agent_to_retry(session, plan: Plan):
    """The session's last agent if it failed and would be built the same way now (same servers, same credential
    and file names collected), else None."""
    agent_id = session.context.get("agent_id")
    agent = session.agents.filter(pk=agent_id, status=Agent.Status.FAILED).first() if agent_id else None
    if agent is None:
        return None
    fresh = catalogue_servers(session=session, server_slugs=plan.server_slugs())
    return agent if fresh.credential_keys() == agent_stored_credential_keys(agent) else None


def _step_text(step) -> str:
    """One workflow line of the agent's instructions: the step, its server and tool, and the runner-up tool to
    try should the first not fit what the step meets at run time."""
    if not step.server:
        return step.action
    if not step.tool:
        return f"{step.action} (server {step.server})"
    also = f"; if it does not fit, try {step.alternative_tool}" if step.alternative_tool else ""
    return f"{step.action} (server {step.server}, tool {step.tool}{also})"
