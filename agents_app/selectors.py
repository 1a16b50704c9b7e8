"""Agent reads, always scoped to the API client: another client's agent is the same 404 as an unknown one."""

import uuid
from typing import Any

from django.db.models import QuerySet

from agents_app import mcp_config
from agents_app.models import Agent, AgentRun, AgentRunEvent, AgentSchedule, AgentTrigger, Conversation
from mcpagent.errors import NotFound
from mcpagent.models import ApiClient


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def agent_get(*, client: ApiClient, agent_id: Any) -> Agent:
    agent = Agent.objects.filter(id=agent_id, client=client).first() if _is_uuid(agent_id) else None
    if agent is None:
        raise NotFound("Agent not found.", details={"agent_id": str(agent_id)[:100]})
    return agent


def agent_list(*, client: ApiClient) -> QuerySet[Agent]:
    return Agent.objects.filter(client=client).order_by("-created_at")


def agent_run_get(*, agent: Agent, run_id: Any) -> AgentRun:
    run = AgentRun.objects.filter(id=run_id, agent=agent).first() if _is_uuid(run_id) else None
    if run is None:
        raise NotFound("Run not found.", details={"run_id": str(run_id)[:100]})
    return run


def agent_schedule_get(*, agent: Agent) -> AgentSchedule:
    schedule = AgentSchedule.objects.filter(agent=agent).first()
    if schedule is None:
        raise NotFound("The agent has no schedule.", details={"agent_id": str(agent.id)})
    return schedule


def agent_runs(*, agent: Agent) -> QuerySet[AgentRun]:
    return AgentRun.objects.filter(agent=agent).order_by("-created_at", "-id")


def run_tool_timings(*, run: AgentRun) -> dict[str, dict]:
    """{call id: duration_ms, result_chars, error} of each finished tool call the run's recorder saw."""
    return {e.data.get("call_id"): {k: e.data.get(k) for k in ("duration_ms", "result_chars", "error")}
            for e in AgentRunEvent.objects.filter(run=run, kind=AgentRunEvent.Kind.TOOL_FINISHED)}


def agent_trigger_get(*, agent: Agent, trigger_id: Any) -> AgentTrigger:
    trigger = AgentTrigger.objects.filter(pk=trigger_id, agent=agent).first() if _is_uuid(trigger_id) else None
    if trigger is None:
        raise NotFound("Trigger not found.", details={"trigger_id": str(trigger_id)[:100]})
    return trigger


def agent_turns(*, agent: Agent, run: AgentRun | None = None) -> QuerySet:
    turns = Conversation.objects.filter(agent=agent)
    if run is not None:
        turns = turns.filter(metadata__run_id=str(run.id))
    return turns.order_by("timestamp", "id")


def agent_servers(*, agent: Agent) -> dict[str, dict]:
    """Each server as shown to the client: launch data, env/header names (never values), validated tools."""
    validation = agent.metadata.get("validation", {}).get("servers", {})
    shown = {}
    for name, entry in agent.mcp_config.get("mcpServers", {}).items():
        shown[name] = {
            **mcp_config.public_entry(entry),
            "validated": validation.get(name, {}).get("ok"),
            "server_info": validation.get(name, {}).get("server_info") or None,
            "tools": agent.tools.get(name, []),
        }
    return shown


def agent_export(*, agent: Agent) -> dict:
    """A ready-to-run fast-agent project for the agent; secrets are ${VAR} placeholders."""
    return mcp_config.export_project(name=agent.name, instruction=agent.instruction, model=agent.model,
                                     servers=agent.mcp_config.get("mcpServers", {}))


_CREATING = (Agent.Status.CREATING, Agent.Status.VALIDATING)


def creations_in_progress_count(*, client: ApiClient, excluding_session: Any = None) -> int:
    """Agents of the client being created or validated, plus its chat sessions whose agent is still to come
    (being analysed, or creating an agent whose row does not exist yet)."""
    # The chat session an agent is built from, known through the agent's own relation (agents_app never
    # imports the sessions app, which sits above it).
    session_model = Agent._meta.get_field("session").related_model
    agents = Agent.objects.filter(client=client, status__in=_CREATING).count()
    sessions = (session_model.objects.filter(client=client, status__in=(session_model.Status.ANALYSING,
                                                                        session_model.Status.CREATING_AGENT))
                .exclude(agents__status__in=_CREATING))
    if excluding_session is not None:
        sessions = sessions.exclude(pk=excluding_session.pk)
    return agents + sessions.count()


def runs_in_progress_count(*, client: ApiClient) -> int:
    return AgentRun.objects.filter(agent__client=client,
                                   status__in=(AgentRun.Status.QUEUED, AgentRun.Status.RUNNING)).count()
