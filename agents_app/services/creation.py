"""Agent creation from an mcpServers configuration: the inputs checked, the instruction written, the agent stored
in `creating` state with its secret values stored as credentials (nothing starts here; see validation)."""

import json
from typing import Any

from django.db import transaction

from agents_app import mcp_config
from agents_app.models import Agent
from agents_app.secrets import credential_scope, secrets_store
from agents_app.services.inputs import (
    MAX_PROMPT_CHARS,
    MAX_SERVER_INFO_CHARS,
    MAX_WORKFLOW_CHARS,
    check_model,
    check_playback,
    check_servers,
    check_text,
)
from agents_app.services.limits import in_progress_check
from agents_app.services.progress import progress_entry
from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient


def workflow_text(workflow: Any) -> tuple[str, list[str]]:
    """The workflow as text and as steps. Accepts a string or a list of strings / {"description"|"action"} dicts."""
    if isinstance(workflow, str):
        steps = [line.strip() for line in workflow.splitlines() if line.strip()]
        return workflow.strip(), steps
    if isinstance(workflow, list):
        steps = []
        for item in workflow:
            if isinstance(item, str):
                steps.append(item.strip())
            elif isinstance(item, dict):
                steps.append(str(item.get("description") or item.get("action") or item.get("step") or "").strip())
            else:
                raise ApplicationError("workflow steps must be strings or objects with a description.",
                                       code="invalid_workflow", details={"field": "workflow"})
        steps = [s for s in steps if s]
        return "\n".join(f"{n}. {s}" for n, s in enumerate(steps, 1)), steps
    raise ApplicationError("workflow must be a string or a list of steps.", code="invalid_workflow",
                           details={"field": "workflow"})


def agent_instruction(*, user_prompt: str, workflow: str, server_info: dict) -> str:
    lines = [
        "You are an agent that carries out the user's workflow with the tools of your MCP servers.",
        "Use the tools to act and to get facts; never invent tool results. Say clearly when a step fails.",
        "",
        f"The user's request: {user_prompt.strip()}",
    ]
    if workflow:
        lines += ["", "Workflow:", workflow]
    described = [s for s in server_info.get("servers", []) if isinstance(s, dict) and s.get("name")]
    if described:
        lines += ["", "Servers:"] + [f"- {s['name']}: {str(s.get('description', ''))[:300]}" for s in described]
    return "\n".join(lines)


@transaction.atomic
def agent_create(*, client: ApiClient, servers: dict[str, dict], user_prompt: str, workflow: Any,
                 session: Any = None, server_info: dict | None = None, model: str | None = None, name: str = "",
                 playback: list[dict] | None = None, catalogue_slugs: dict[str, str] | None = None,
                 catalogue_defaults: dict[str, dict[str, str]] | None = None, actor: Any = None,
                 end_user: str = "") -> Agent:
    """Check and store a new agent in `creating` state; nothing starts here (see agent_validate).

    `servers` is an mcpServers mapping. Env/header values may be plain values (stored through the credentials
    service, scoped to this agent) or references {"$credential": KEY} to credentials already stored for
    the session/agent (catalogue servers: see agent_create_for_catalogue_servers). `catalogue_slugs`
    ({server name: catalogue slug}) scopes a server's credentials to that catalogue server. Unsafe entries
    raise a 400 naming the server and the problem, and nothing is stored. `end_user`: the client's id for the
    person the agent acts for (an agent built from a session takes the session's); its values are theirs."""
    user_prompt = check_text(user_prompt, field="user_prompt", limit=MAX_PROMPT_CHARS)
    workflow_str, steps = workflow_text(workflow)
    if len(workflow_str) > MAX_WORKFLOW_CHARS:
        raise ApplicationError(f"workflow is longer than {MAX_WORKFLOW_CHARS} characters.", code="invalid_input",
                               details={"field": "workflow"})
    server_info = server_info if isinstance(server_info, dict) else {}
    if len(json.dumps(server_info)) > MAX_SERVER_INFO_CHARS:
        raise ApplicationError(f"mcp_server_info is larger than {MAX_SERVER_INFO_CHARS} characters.",
                               code="invalid_input", details={"field": "mcp_server_info"})
    model = check_model(model)
    playback = check_playback(playback)
    catalogue = catalogue_slugs or {}
    normalised = check_servers(servers)
    if session is None:  # a chat session's creation was admitted by its chat turn (sessions_app chat_turn)
        in_progress_check(client=client, kind="creations")
    stored: dict[str, dict] = {}
    values_by_server: dict[str, dict[str, str]] = {}
    for server_name, entry in normalised.items():
        entry_stored, values = mcp_config.split_secrets(entry)
        if server_name in catalogue:
            entry_stored["catalogue"] = catalogue[server_name]
            # The catalogue's literal, non-secret settings (not user input, so outside the safety check's input).
            if (catalogue_defaults or {}).get(server_name):
                entry_stored["defaults"] = dict(catalogue_defaults[server_name])
        stored[server_name] = entry_stored
        values_by_server[server_name] = values
    agent = Agent.objects.create(
        client=client, session=session, name=(name or user_prompt.strip().splitlines()[0])[:200],
        end_user=session.end_user if session is not None else end_user,
        status=Agent.Status.CREATING, mcp_config={"mcpServers": stored}, server_info=server_info,
        workflow=workflow_str, model=model,
        instruction=agent_instruction(user_prompt=user_prompt, workflow=workflow_str, server_info=server_info),
        progress=[progress_entry("created", f"{len(stored)} MCP server(s) passed the safety checks")],
        metadata={"user_prompt": user_prompt, "workflow_steps": steps, **({"playback": playback} if playback else {})},
    )
    for server_name, values in values_by_server.items():
        secrets_store(agent=agent, server_name=server_name, scope=credential_scope(server_name, stored[server_name]),
                      values=values, actor=actor or client, reason="agent_create")
    return agent
