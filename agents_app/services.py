"""Agent writes: create (safety-checked, secrets stored as references), validate (start every server, list its
tools), run a message (fast-agent, in a worker), and the Celery hand-offs with their short waits."""

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents_app import mcp_config, safety
from agents_app.run_events import RunRecorder
from agents_app.runtime import WarmKey, run_agent, task_redactor, validate_servers, warm_servers_drop
from agents_app.sandbox import prefetch
from agents_app import schedule_times
from agents_app.models import Agent, AgentRun, AgentSchedule, Conversation
from agents_app.oauth_rules import oauth_connected_keys
from agents_app.oauth_retry import validation_retry_after_oauth_refresh
from agents_app.remote_auth import authorization_prepare, validation_retry_after_refresh
from agents_app.secrets import (
    credential_scope,
    remote_token_apply,
    secrets_adopt,
    secrets_files_for_use,
    secrets_for_use,
    secrets_record_validation,
    secrets_redactor,
    secrets_store,
)
from mcpagent.errors import ApplicationError
from registry_app.models import McpServer
from mcpagent.metrics import AGENT_CREATIONS, AGENT_RUNS
from mcpagent.models import ApiClient
from mcpagent.waiting import wait_until
from mcpagent.vault.files import files_collected
from mcpagent.vault.store import credentials_collected, credentials_for_agent_delete

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 20_000
MAX_WORKFLOW_CHARS = 50_000
MAX_MESSAGE_CHARS = 50_000
MAX_PLAYBACK_STEPS = 100
MAX_SERVER_INFO_CHARS = 256 * 1024
HISTORY_TURNS = 20
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$")
OFFLINE_MODELS = ("passthrough", "playback")


# --- creation ----------------------------------------------------------------------------------------

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


def _check_text(value: Any, *, field: str, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ApplicationError(f"{field} is required (a non-empty string).", code="invalid_input",
                               details={"field": field})
    if len(value) > limit:
        raise ApplicationError(f"{field} is longer than {limit} characters.", code="invalid_input",
                               details={"field": field, "max": limit})
    return value


def _check_model(model: str | None) -> str:
    model = (model or settings.AGENT_DEFAULT_MODEL).strip()
    if not MODEL_RE.match(model):
        raise ApplicationError("model is not a valid model name.", code="invalid_input", details={"field": "model"})
    if model not in OFFLINE_MODELS:
        # fast-agent's own parser (imported lazily, ~1 s once per process): an unknown model is a 400 now, not a
        # failed run later.
        from fast_agent.llm.model_factory import ModelFactory

        try:
            ModelFactory.parse_model_string(model)
        except Exception as exc:  # noqa: BLE001 -- fast-agent raises its own config error types
            raise ApplicationError(f"fast-agent does not know the model {model!r}.", code="invalid_input",
                                   details={"field": "model", "problem": str(exc).splitlines()[0][:300]}) from None
    return model


def _check_playback(playback: Any) -> list[dict] | None:
    if playback is None:
        return None
    if not isinstance(playback, list) or not playback or len(playback) > MAX_PLAYBACK_STEPS:
        raise ApplicationError(f"playback must be a list of 1-{MAX_PLAYBACK_STEPS} steps.", code="invalid_input",
                               details={"field": "playback"})
    steps = []
    for index, step in enumerate(playback):
        where = {"field": f"playback[{index}]"}
        if not isinstance(step, dict) or step.get("role") not in ("user", "assistant"):
            raise ApplicationError("each playback step needs role user or assistant.", code="invalid_input",
                                   details=where)
        calls = step.get("tool_calls") or []
        if not isinstance(calls, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("arguments", {}), dict)
            for c in calls
        ):
            raise ApplicationError("tool_calls are [{name, arguments}].", code="invalid_input", details=where)
        steps.append({"role": step["role"], "text": str(step.get("text", ""))[:MAX_MESSAGE_CHARS],
                      "tool_calls": [{"name": c["name"], "arguments": c.get("arguments", {})} for c in calls]})
    return steps


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
    user_prompt = _check_text(user_prompt, field="user_prompt", limit=MAX_PROMPT_CHARS)
    workflow_str, steps = workflow_text(workflow)
    if len(workflow_str) > MAX_WORKFLOW_CHARS:
        raise ApplicationError(f"workflow is longer than {MAX_WORKFLOW_CHARS} characters.", code="invalid_input",
                               details={"field": "workflow"})
    server_info = server_info if isinstance(server_info, dict) else {}
    if len(json.dumps(server_info)) > MAX_SERVER_INFO_CHARS:
        raise ApplicationError(f"mcp_server_info is larger than {MAX_SERVER_INFO_CHARS} characters.",
                               code="invalid_input", details={"field": "mcp_server_info"})
    model = _check_model(model)
    playback = _check_playback(playback)
    catalogue = catalogue_slugs or {}
    normalised = _check_servers(servers)
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
        progress=[_progress("created", f"{len(stored)} MCP server(s) passed the safety checks")],
        metadata={"user_prompt": user_prompt, "workflow_steps": steps, **({"playback": playback} if playback else {})},
    )
    for server_name, values in values_by_server.items():
        secrets_store(agent=agent, server_name=server_name, scope=credential_scope(server_name, stored[server_name]),
                      values=values, actor=actor or client, reason="agent_create")
    return agent


def in_progress_check(*, client: ApiClient, kind: str, excluding_session: Any = None) -> None:
    """429 too_many_in_progress when the client already has its limit of agent creations or runs under way, so
    one client cannot fill the worker queue. Call inside the transaction that starts the new one: the client's
    row stays locked until it commits, so concurrent requests of one client are counted one after another."""
    from agents_app.selectors import creations_in_progress_count, runs_in_progress_count

    setting = {"creations": "AGENT_MAX_CONCURRENT_CREATIONS_PER_CLIENT",
               "runs": "AGENT_MAX_CONCURRENT_RUNS_PER_CLIENT"}[kind]
    limit = getattr(settings, setting)
    if limit <= 0:
        return
    list(ApiClient.objects.select_for_update().filter(pk=client.pk).values_list("pk"))
    if kind == "creations":
        count = creations_in_progress_count(client=client, excluding_session=excluding_session)
        what = "agent creations"
    else:
        count = runs_in_progress_count(client=client)
        what = "agent runs"
    if count >= limit:
        raise ApplicationError(
            f"This client already has {count} {what} in progress, the most allowed at once ({setting}={limit}); "
            "try again when one has finished.",
            code="too_many_in_progress", status=429, details={"limit": limit, "in_progress": count, "setting": setting},
        )


def _check_servers(servers: Any) -> dict[str, dict]:
    """safety.check_servers, with each credential argument ({"$credential": KEY}) checked as the stand-in
    "{KEY}" (so a reference where the launcher expects its package or options is refused) and kept as the
    reference in the result. A remote URL template's "url_vars" ({VAR: reference}) are checked here: only
    references, only variables of the URL, none in its scheme or user part (the URL itself is checked as
    usual, and again once filled at start)."""
    if not isinstance(servers, dict):
        return safety.check_servers(servers)
    references: dict[str, list] = {}
    url_vars: dict[str, Any] = {}
    checked: dict[Any, Any] = {}
    for name, entry in servers.items():
        args = entry.get("args") if isinstance(entry, dict) else None
        if isinstance(args, list) and any(mcp_config.is_reference(a) for a in args):
            references[name] = list(args)
            entry = {**entry, "args": [mcp_config.arg_placeholder(a) if mcp_config.is_reference(a) else a
                                       for a in args]}
        if isinstance(entry, dict) and mcp_config.URL_VARS in entry:
            url_vars[name] = entry[mcp_config.URL_VARS]
            entry = {k: v for k, v in entry.items() if k != mcp_config.URL_VARS}
        checked[name] = entry
    normalised = safety.check_servers(checked)
    for name, args in references.items():
        normalised[name]["args"] = args
    violations = []
    for name, variables in url_vars.items():
        problem = _url_vars_problem(normalised[name], variables)
        if problem:
            violations.append({"server": str(name)[:80], "field": mcp_config.URL_VARS, "problem": problem})
        else:
            normalised[name][mcp_config.URL_VARS] = dict(variables)
    if violations:
        first = violations[0]
        raise ApplicationError(f"MCP server '{first['server']}' is not allowed: {first['field']}: {first['problem']}",
                               code="unsafe_mcp_config", details={"violations": violations})
    return normalised


def _url_vars_problem(entry: dict, variables: Any) -> str | None:
    if entry.get("transport") == "stdio":
        return "only a remote server's URL has variables"
    if not isinstance(variables, dict) or not variables or len(variables) > 16:
        return "must be an object of 1-16 {VAR: {\"$credential\": KEY}}"
    if not all(mcp_config.is_reference(ref) and not ref.get("file") and not ref.get("template")
               for ref in variables.values()):
        return "each variable must be a credential reference {\"$credential\": KEY}"
    try:
        mcp_config.url_variable_parts(entry["url"], [str(var) for var in variables])
    except ValueError as exc:
        return str(exc)
    return None


@dataclass
class CatalogueServers:
    """What agent_create needs for catalogue servers: the mcpServers entries (references only), the catalogue's
    literal defaults and slug per server name, and the servers described for the instruction."""

    servers: dict[str, dict]
    defaults: dict[str, dict[str, str]]
    slugs: dict[str, str]
    described: list[dict]

    def credential_keys(self) -> dict[str, tuple[str, list[str], list[str]]]:
        """{server name: (slug, value keys, file keys)}: what the servers would be started with."""
        return {name: (self.slugs[name], mcp_config.value_keys(entry), mcp_config.file_keys(entry))
                for name, entry in self.servers.items()}


def catalogue_servers(*, session: Any, server_slugs: list[str]) -> CatalogueServers:
    """The agent configuration for catalogue servers. Launch recipes come from the catalogue, never from the
    user; env/header values and credential arguments are references to the credentials collected in `session`
    for each server, and files uploaded for a file requirement are file references (only keys that were
    collected; the credentials service resolves them, and writes the files, at start time)."""
    from agents_app.master.requirements import counts_as_required
    from registry_app.models import CredentialRequirement, McpServer

    if not server_slugs:
        raise ApplicationError("No MCP servers were chosen for the agent.", code="invalid_input",
                               details={"field": "server_slugs"})
    collected = credentials_collected(session=session) if session is not None else {}
    collected_files = files_collected(session=session) if session is not None else set()
    location = CredentialRequirement.Location
    found = {s.slug: s for s in McpServer.objects.filter(slug__in=server_slugs).prefetch_related("launch_recipes")}
    result = CatalogueServers(servers={}, defaults={}, slugs={}, described=[])
    for slug in server_slugs:
        server = found.get(slug)
        if server is None:
            raise ApplicationError(f"The catalogue has no server '{slug}'.", code="unknown_server", status=404,
                                   details={"server": slug})
        keys = set(collected.get(slug, set()))
        oauth_keys, oauth_files = (oauth_connected_keys(client=session.client, end_user=session.end_user, server=slug)
                                   if session is not None else ([], []))
        keys |= set(oauth_keys)  # supplied by the end user's OAuth connection at each start
        env_keys, header_keys, arg_keys, file_keys, omit_keys = [], [], [], [], []
        arg_defaults: dict[str, str] = {}
        for req in CredentialRequirement.objects.filter(server=server).order_by("key"):
            is_file = req.location == location.FILE or req.kind == CredentialRequirement.Kind.FILE_PATH
            if req.key in oauth_files or (is_file and (req.key in collected_files
                                                         or f"{slug}:{req.key}" in collected_files)):
                file_keys.append(req.key)  # uploaded (vault files): the server gets its path
            elif req.key in keys and req.location != location.FILE:
                {location.HEADER: header_keys, location.ARG: arg_keys}.get(req.location, env_keys).append(req.key)
            elif req.location == location.ARG and req.default:
                arg_defaults[req.key] = req.default
            elif not counts_as_required(required=req.required, secret=req.secret, default=req.default, key=req.key):
                omit_keys.append(req.key)
        recipe = pick_recipe(list(server.launch_recipes.all()))
        if recipe is None:
            raise ApplicationError(f"The catalogue does not say how to start {server.name}.", code="recipe_unusable",
                                   details={"server": slug})
        server_name = server_name_for(slug, taken=result.servers)
        entry = mcp_config.entry_from_recipe(recipe, env_keys=env_keys, header_keys=header_keys, arg_keys=arg_keys,
                                             file_keys=file_keys, arg_defaults=arg_defaults, omit_keys=omit_keys)
        if "defaults" in entry:
            result.defaults[server_name] = entry.pop("defaults")
        result.servers[server_name] = entry
        result.slugs[server_name] = slug
        result.described.append({"name": server.name, "slug": slug, "description": server.description[:500]})
    return result


def agent_create_for_catalogue_servers(*, client: ApiClient, session: Any, server_slugs: list[str], user_prompt: str,
                                       workflow: Any, model: str | None = None, server_info: dict | None = None,
                                       name: str = "", actor: Any = None) -> Agent:
    """Create an agent for catalogue servers (the chat flow), configured by catalogue_servers, holding the
    credentials and files collected in `session`."""
    chosen = catalogue_servers(session=session, server_slugs=server_slugs)
    info = server_info if isinstance(server_info, dict) and server_info.get("servers") else {"servers": chosen.described}
    with transaction.atomic():
        agent = agent_create(client=client, session=session, servers=chosen.servers, server_info=info,
                             user_prompt=user_prompt, workflow=workflow, model=model, name=name,
                             catalogue_slugs=chosen.slugs, catalogue_defaults=chosen.defaults, actor=actor)
        secrets_adopt(agent=agent, actor=actor or client)
    return agent


def agent_stored_credential_keys(agent: Agent) -> dict[str, tuple[str, list[str], list[str]]]:
    """CatalogueServers.credential_keys of a stored agent (a server without a catalogue slug has slug "")."""
    return {name: (entry.get("catalogue", ""), mcp_config.value_keys(entry), mcp_config.file_keys(entry))
            for name, entry in agent.mcp_config.get("mcpServers", {}).items()}


def catalogue_packages_prefetch(*, server_slugs: list[str]) -> dict[str, str]:
    """Prefetch the package each catalogue server would be started with ({package: outcome})."""
    from registry_app.models import McpServer

    launches = []
    for server in McpServer.objects.filter(slug__in=server_slugs).prefetch_related("launch_recipes"):
        recipe = pick_recipe(list(server.launch_recipes.all()))
        if recipe is not None and recipe.kind != "remote":
            entry = mcp_config.entry_from_recipe(recipe, env_keys=[], header_keys=[])
            launches.append((entry.get("command", ""), entry.get("args", [])))
    return prefetch.prefetch_all(launches)


def catalogue_packages_prefetch_queue(*, server_slugs: list[str]) -> None:
    """Start the prefetch in a worker (not inline: without a broker it would hold up the chat reply)."""
    from kombu.exceptions import OperationalError as BrokerError

    from agents_app.tasks import packages_prefetch_task

    if settings.CELERY_TASK_ALWAYS_EAGER or not server_slugs:
        return
    try:
        packages_prefetch_task.apply_async([list(server_slugs)], expires=settings.PACKAGE_PREFETCH_EXPIRES_SECONDS)
    except BrokerError:
        logger.warning("package prefetch not queued: the task queue is unavailable")


def pick_recipe(recipes: list[Any]) -> Any:
    """The preferred recipe whose launcher is allowed here, installed ones first (a remote needs none)."""
    def launcher(recipe: Any) -> str | None:
        return {"npm": "npx", "pypi": "uvx", "oci": "docker", "remote": None}.get(recipe.kind, recipe.command or "")

    usable = [r for r in sorted(recipes, key=lambda r: (r.priority, r.id))
              if (r.kind == "remote" and r.url) or (launcher(r) and launcher(r) in safety.allowed_commands())]
    installed = [r for r in usable if r.kind == "remote" or safety.resolve_command(launcher(r))]
    return (installed or usable or [None])[0]


def server_name_for(slug: str, *, taken: dict) -> str:
    base = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_-]+", "-", slug.rsplit("/", 1)[-1])).strip("-_")[:56] or "server"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _progress(step: str, detail: str = "", **extra: Any) -> dict:
    return {"at": timezone.now().isoformat(), "step": step, "detail": detail, **extra}


def _append_progress(agent_id: Any, entry: dict, **fields: Any) -> None:
    with transaction.atomic():
        agent = Agent.objects.select_for_update().filter(pk=agent_id).first()
        if agent is None:  # deleted meanwhile (agent_delete)
            return
        agent.progress = [*agent.progress, entry]
        for key, value in fields.items():
            setattr(agent, key, value)
        agent.save()


def launch_specs(agent: Agent, *, reason: str, actor: Any = None, files: dict[str, dict[str, str]] | None = None,
                 only: set[str] | None = None) -> list[mcp_config.LaunchSpec]:
    """Each server of the agent (or those named in `only`) with its credentials resolved (in memory only, for one
    start). `files`: {server name: {key: path}} of the files materialized for this start (see agent_launch)."""
    labels = {}
    for item in agent.server_info.get("servers", []) if isinstance(agent.server_info, dict) else []:
        if isinstance(item, dict) and item.get("name"):
            labels[str(item.get("slug") or item["name"])] = str(item["name"])
    slugs = [e["catalogue"] for e in agent.mcp_config.get("mcpServers", {}).values() if e.get("catalogue")]
    egress = dict(McpServer.objects.filter(slug__in=slugs).values_list("slug", "egress_hosts")) if slugs else {}
    specs = []
    for server_name, entry in agent.mcp_config.get("mcpServers", {}).items():
        if only is not None and server_name not in only:
            continue
        values = (secrets_for_use(agent=agent, scope=credential_scope(server_name, entry), actor=actor or agent.client,
                                  reason=reason) if mcp_config.value_keys(entry) else {})
        label = labels.get(entry.get("catalogue", "")) or labels.get(server_name) or server_name
        spec = mcp_config.launch_spec(name=server_name, entry=entry, values=values,
                                      files=(files or {}).get(server_name), label=label)
        spec.egress_hosts = egress.get(entry.get("catalogue", ""), [])
        remote_token_apply(agent=agent, spec=spec, actor=actor or agent.client, reason=reason)
        specs.append(spec)
    return specs


def _launch_error(exc: ApplicationError) -> dict:
    """An agent's or run's stored error for a server that could not be prepared (a credential missing, ...)."""
    details = exc.details or {}
    return {"server": details.get("server"), "code": exc.code, "message": exc.message, "hint": details.get("hint", "")}


@contextmanager
def agent_launch(agent: Agent, *, reason: str, actor: Any = None,
                 only: set[str] | None = None) -> Iterator[list[mcp_config.LaunchSpec]]:
    """launch_specs with the servers' stored files written (decrypted) into private folders for exactly the
    block: start, use and stop the servers inside it. The files are removed when it ends, also on error or
    timeout. A missing credential or file raises ApplicationError 409 credential_missing on entry."""
    with ExitStack() as stack:
        files: dict[str, dict[str, str]] = {}
        for server_name, entry in agent.mcp_config.get("mcpServers", {}).items():
            keys = mcp_config.file_keys(entry)
            if keys and (only is None or server_name in only):
                files[server_name] = stack.enter_context(secrets_files_for_use(
                    agent=agent, server_name=server_name, scope=credential_scope(server_name, entry), keys=keys,
                    actor=actor or agent.client, reason=reason,
                ))
        yield launch_specs(agent, reason=reason, actor=actor, files=files, only=only)


def agent_validate(*, agent_id: Any) -> Agent:
    """Start each server with its credentials, initialize, list its tools, stop it; the agent ends `ready`
    (tools per server) or `failed` (error: which server, what happened, what to do). Idempotent for a
    finished agent. Blocking: call it from a worker (agent_validate_task) or a command."""
    agent = Agent.objects.select_related("client", "session").get(pk=agent_id)
    if agent.status in (Agent.Status.READY, Agent.Status.FAILED):
        return agent
    warm_servers_drop(agent.id)  # revalidation: servers kept warm by this process may hold old credentials
    _append_progress(agent.id, _progress("validating", "starting MCP servers"), status=Agent.Status.VALIDATING)
    started = time.monotonic()
    with ExitStack() as stack:
        try:
            specs = stack.enter_context(agent_launch(agent, reason="agent_validate"))
        except ApplicationError as exc:
            error = _launch_error(exc)
            _append_progress(agent.id, _progress("failed", exc.message), status=Agent.Status.FAILED, error=error)
            AGENT_CREATIONS.labels(outcome=Agent.Status.FAILED).inc()
            return _finished(agent.id)
        packages = [(spec.command, spec.args) for spec in specs if not prefetch.is_prefetched(spec.command, spec.args)]
        if packages:
            _append_progress(agent.id, _progress("fetching", f"fetching {len(packages)} package(s) into the cache"))
            prefetch.prefetch_all(packages)
        results = validate_servers(specs)  # every server is stopped when it returns; then the files go
        results.update(validation_retry_after_refresh(agent, specs, results))
    results.update(validation_retry_after_oauth_refresh(
        agent, results, relaunch=lambda names: agent_launch(agent, reason="agent_validate", only=names)))
    tools = {name: result.tools for name, result in results.items() if result.ok}
    failures = [result.error for result in results.values() if not result.ok]
    entries = agent.mcp_config.get("mcpServers", {})
    for name, result in results.items():
        if mcp_config.secret_keys(entries[name]):
            secrets_record_validation(
                agent=agent, scope=credential_scope(name, entries[name]), accepted=result.ok, actor=agent.client,
                details={"tools": len(result.tools)} if result.ok else {"error": result.error["code"]},
            )
    with transaction.atomic():
        current = Agent.objects.select_for_update().filter(pk=agent.id).first()
        if current is None:
            logger.info("agent %s was deleted during its validation; the outcome is dropped", agent.id)
            return agent
        agent = current
        for name, result in results.items():
            detail = f"{len(result.tools)} tool(s) in {result.seconds:.2f} s" if result.ok else result.error["message"]
            agent.progress = [*agent.progress, _progress("server_ok" if result.ok else "server_failed", detail,
                                                         server=name)]
        agent.tools = tools
        agent.metadata = {**agent.metadata, "validation": {
            "seconds": round(time.monotonic() - started, 3),
            "servers": {n: {"ok": r.ok, "seconds": r.seconds, "server_info": r.server_info}
                        for n, r in results.items()},
        }}
        if failures:
            agent.status = Agent.Status.FAILED
            agent.error = {**failures[0], "servers": failures} if len(failures) > 1 else failures[0]
            agent.progress = [*agent.progress, _progress("failed", failures[0]["message"])]
        else:
            agent.status = Agent.Status.READY
            agent.error = None
            agent.progress = [*agent.progress, _progress("ready", f"{sum(map(len, tools.values()))} tool(s) validated")]
        agent.save()
    if agent.status == Agent.Status.FAILED and settings.OAUTH_REDIRECT_URL:
        # Once, here: answers about this agent then make authorization links from what this stored, no network.
        try:
            authorization_prepare(agent, redirect_uri=settings.OAUTH_REDIRECT_URL)
        except ApplicationError as exc:  # a POST's answer prepares again
            logger.info("agent %s: remote servers not prepared for authorization: %s", agent.id, exc.code)
    AGENT_CREATIONS.labels(outcome=agent.status).inc()
    logger.info("agent %s validation: %s in %.2f s (%s)", agent.id, agent.status, time.monotonic() - started,
                ", ".join(f"{n}={'ok' if r.ok else r.error['code']}" for n, r in results.items()))
    return agent


def _finished(agent_id: Any) -> Agent:
    return Agent.objects.get(pk=agent_id)


def agent_validation_abandon(*, agent_id: Any, reason: str) -> None:
    """Mark an agent whose validation task could not finish as failed."""
    error = {"server": None, "code": "validation_aborted", "message": f"Validation was stopped: {reason}.",
             "hint": "Create the agent again; if it keeps happening, raise AGENT_VALIDATION_TIMEOUT_SECONDS."}
    if Agent.objects.filter(pk=agent_id, status__in=[Agent.Status.CREATING, Agent.Status.VALIDATING]).exists():
        _append_progress(agent_id, _progress("failed", error["message"]), status=Agent.Status.FAILED, error=error)


def agent_validation_queue(*, agent: Agent) -> None:
    """Hand validation to a worker (inline when no broker is configured). The task takes only the id."""
    from kombu.exceptions import OperationalError as BrokerError

    from agents_app.tasks import agent_validate_task

    try:
        agent_validate_task.delay(str(agent.id))
    except BrokerError:
        agent_validation_abandon(agent_id=agent.id, reason="the task queue is unavailable")
        raise ApplicationError("The task queue is unavailable; try again shortly.", code="queue_unavailable",
                               status=503, details={"agent_id": str(agent.id)}) from None


def wait_for(predicate_query: Any, *, done: tuple[str, ...], seconds: float) -> str | None:
    """Poll a status column until it is one of `done` or `seconds` pass (a bounded wait: mcpagent.waiting);
    returns the last status."""
    seen: list = [None]

    def finished() -> bool:
        seen[0] = predicate_query.values_list("status", flat=True).first()
        return seen[0] in done

    wait_until(finished, seconds=seconds)
    return seen[0]


# --- runs --------------------------------------------------------------------------------------------

def agent_message_send(*, agent: Agent, message: str, model: str | None = None, actor: Any = None,
                       trigger: str = AgentRun.Trigger.MESSAGE) -> AgentRun:
    """Record the user's message and a queued run; the caller dispatches it (agent_run_queue)."""
    message = _check_text(message, field="message", limit=MAX_MESSAGE_CHARS)
    if agent.status != Agent.Status.READY:
        raise ApplicationError(
            f"The agent is {agent.status}; only a ready agent runs messages.", code="agent_not_ready", status=409,
            details={"status": agent.status, "error": agent.error},
        )
    model = _check_model(model or agent.model)
    with transaction.atomic():
        in_progress_check(client=agent.client, kind="runs")
        # A credential value of the agent pasted into the message is stored and shown masked; the model gets the
        # message as sent, from the encrypted copy.
        shown = secrets_redactor(agent=agent)(message)
        run = AgentRun.objects.create(agent=agent, message=shown, model=model, trigger=trigger,
                                      message_sealed=message.encode() if shown != message else None)
        Conversation.objects.create(agent=agent, role=Conversation.Role.USER, message=shown,
                                    metadata={"run_id": str(run.id)})
    return run


def agent_run_queue(*, run: AgentRun) -> None:
    from kombu.exceptions import OperationalError as BrokerError

    from agents_app.tasks import agent_run_task

    try:
        agent_run_task.delay(str(run.id))
    except BrokerError:
        agent_run_abandon(run_id=run.id, reason="the task queue is unavailable")
        raise ApplicationError("The task queue is unavailable; try again shortly.", code="queue_unavailable",
                               status=503, details={"run_id": str(run.id)}) from None


def agent_run_execute(*, run_id: Any) -> AgentRun | None:
    """Run the message with fast-agent against the agent's servers and store every tool call, tool result and
    the reply as conversation turns. Never raises for an agent failure: the run ends `failed` with an error."""
    with transaction.atomic():
        run = (AgentRun.objects.select_for_update(of=("self",))
               .select_related("agent", "agent__client", "agent__session").filter(pk=run_id).first())
        if run is None or run.status != AgentRun.Status.QUEUED:
            return run  # None: its agent was deleted
        run.status = AgentRun.Status.RUNNING
        run.started_at = timezone.now()
        run.save(update_fields=["status", "started_at"])
    agent = run.agent
    playback = agent.metadata.get("playback") if run.model == "playback" else None
    history = [] if playback else _history(agent, run)
    recorder = RunRecorder(run.id)
    with ExitStack() as stack:
        try:
            specs = stack.enter_context(agent_launch(agent, reason="agent_run"))
        except ApplicationError as exc:
            warm_servers_drop(agent.id)  # a credential gone or invalid: servers started with it stop too
            return _run_failed(run, _launch_error(exc), recorder=recorder)
        # run_agent stops the server processes it started for this run (also on failure or its run timeout) before
        # it returns, unless it keeps them running for the agent's next run (agents_app.runtime.pool).
        message = bytes(run.message_sealed).decode() if run.message_sealed else run.message
        outcome = run_agent(specs=specs, instruction=agent.instruction, model=run.model, message=message,
                            history=history, playback=playback, watch=recorder.watch,
                            warm=WarmKey(agent=str(agent.id), client=str(agent.client_id)))
    if outcome.error:
        # A failure can name the server's host or URL, which may carry a setting filled into it.
        redact = task_redactor(specs)
        outcome.error = {k: redact(v) if k in ("message", "hint") and isinstance(v, str) else v
                         for k, v in outcome.error.items()}
    with transaction.atomic():
        if not _still_running(run):
            return run
        for turn in outcome.turns:
            Conversation.objects.create(agent=agent, role=turn["role"], message=turn["message"],
                                        metadata={**turn["metadata"], "run_id": str(run.id)})
        run.metadata = {**run.metadata, "seconds": outcome.seconds, "tool_calls": sum(
            1 for t in outcome.turns if t["metadata"].get("kind") == "tool_call"),
            "leftover_processes": outcome.leftover_processes, "warm_servers": outcome.warm}
        if outcome.ok:
            run.status, run.reply, run.error = AgentRun.Status.SUCCEEDED, outcome.reply, None
        else:
            run.status, run.error = AgentRun.Status.FAILED, outcome.error
            Conversation.objects.create(agent=agent, role=Conversation.Role.SYSTEM,
                                        message=outcome.error["message"],
                                        metadata={"run_id": str(run.id), "error": outcome.error})
        run.finished_at, run.message_sealed = timezone.now(), None
        run.save()
        recorder.finish(run)
    AGENT_RUNS.labels(outcome=run.status).inc()
    agent_schedule_record_run(run=run)
    logger.info("agent %s run %s: %s in %.2f s, %d tool call(s)", agent.id, run.id, run.status, outcome.seconds,
                run.metadata["tool_calls"])
    return run


def _still_running(run: AgentRun) -> bool:
    """Lock the run; False (and the worker drops its outcome) when agent_delete stopped or removed it."""
    if AgentRun.objects.select_for_update().filter(pk=run.pk, status=AgentRun.Status.RUNNING).exists():
        return True
    logger.info("run %s was stopped while it ran (its agent was deleted); the outcome is dropped", run.pk)
    return False


def _run_failed(run: AgentRun, error: dict, *, recorder: RunRecorder | None = None) -> AgentRun:
    with transaction.atomic():
        if run.status == AgentRun.Status.RUNNING and not _still_running(run):
            return run
        run.status, run.error, run.finished_at = AgentRun.Status.FAILED, error, timezone.now()
        run.message_sealed = None
        run.save()
        Conversation.objects.create(agent=run.agent, role=Conversation.Role.SYSTEM,
                                    message=error["message"], metadata={"run_id": str(run.id), "error": error})
        if recorder is not None:
            recorder.finish(run)
    AGENT_RUNS.labels(outcome=run.status).inc()
    agent_schedule_record_run(run=run)
    return run


def agent_run_abandon(*, run_id: Any, reason: str) -> None:
    """Mark a run that its task could not finish (time limit, lost worker) as failed."""
    run = AgentRun.objects.select_related("agent").filter(pk=run_id).first()
    if run is not None and run.status in (AgentRun.Status.QUEUED, AgentRun.Status.RUNNING):
        _run_failed(run, {"server": None, "code": "run_aborted", "message": f"The run was stopped: {reason}",
                          "hint": "Try a shorter request, or raise AGENT_RUN_TIMEOUT_SECONDS."})


def _history(agent: Agent, run: AgentRun) -> list[dict]:
    """Earlier user messages and replies of this agent (text only), oldest first, for the model's context."""
    turns = (Conversation.objects.filter(agent=agent, role__in=[Conversation.Role.USER, Conversation.Role.ASSISTANT])
             .exclude(metadata__run_id=str(run.id)).order_by("-timestamp", "-id")[:HISTORY_TURNS])
    history = [{"role": t.role, "text": t.message} for t in reversed(list(turns))]
    while history and history[0]["role"] != "user":
        history.pop(0)
    return history


# --- schedules ---------------------------------------------------------------------------------------

def _schedule_next_run(schedule: AgentSchedule, *, after: Any) -> Any:
    if schedule.cron:
        return schedule_times.next_cron_time(schedule.cron, schedule.timezone, after=after)
    return schedule_times.next_interval_time(schedule.interval_seconds, previous=schedule.next_run_at, after=after)


@transaction.atomic
def agent_schedule_set(*, agent: Agent, cron: str | None = None, interval_seconds: int | None = None,
                       timezone_name: str = "UTC", enabled: bool = True) -> tuple[AgentSchedule, bool]:
    """Create or replace the agent's schedule: exactly one of `cron` and `interval_seconds`. Replacing clears a
    pause and the failure count and computes `next_run_at` afresh. Returns (schedule, created)."""
    cron = (cron or "").strip()
    if bool(cron) == (interval_seconds is not None):
        field = "cron" if not cron else "interval_seconds"
        raise ApplicationError("Give exactly one of cron and interval_seconds.", code="invalid_input",
                               details={"field": field})
    schedule_times.check_timezone(timezone_name)
    if cron:
        schedule_times.parse_cron(cron)
        cron = " ".join(cron.split())
    else:
        schedule_times.check_interval(interval_seconds)
    schedule = AgentSchedule.objects.select_for_update().filter(agent=agent).first()
    created = schedule is None
    schedule = schedule or AgentSchedule(agent=agent)
    schedule.cron = cron
    schedule.interval_seconds = None if cron else interval_seconds
    schedule.timezone = timezone_name
    schedule.enabled, schedule.paused_reason, schedule.consecutive_failures = enabled, "", 0
    schedule.next_run_at = None  # an interval starts afresh from now, not on the old cadence
    schedule.next_run_at = _schedule_next_run(schedule, after=timezone.now())
    schedule.save()
    return schedule, created


@transaction.atomic
def agent_schedule_delete(*, agent: Agent) -> None:
    from agents_app.selectors import agent_schedule_get

    agent_schedule_get(agent=agent).delete()


def agent_schedules_run_due(*, now: Any = None, limit: int = 500) -> list[AgentRun]:
    """Start the runs of the enabled, unpaused schedules whose `next_run_at` has come (the beat task's work).

    Each due schedule is locked (skip_locked: two ticks at once share the work, never a schedule) and its
    `next_run_at` moved past now before anything starts, so one slot starts at most one run; slots missed while
    no tick ran are skipped, not made up. A slot is skipped (logged, nothing recorded) when the agent already has
    a queued or running run, is not ready, or its client is at its cap of runs in progress."""
    now = now or timezone.now()
    started: list[AgentRun] = []
    with transaction.atomic():
        due = list(AgentSchedule.objects.select_for_update(skip_locked=True, of=("self",))
                   .select_related("agent", "agent__client")
                   .filter(enabled=True, paused_reason="", next_run_at__lte=now).order_by("next_run_at")[:limit])
        for schedule in due:
            slot = schedule.next_run_at
            schedule.next_run_at = _schedule_next_run(schedule, after=now)
            schedule.save(update_fields=["next_run_at", "updated_at"])
            agent = schedule.agent
            if AgentRun.objects.filter(agent=agent, status__in=[AgentRun.Status.QUEUED,
                                                                AgentRun.Status.RUNNING]).exists():
                logger.info("schedule of agent %s: slot %s skipped, a run is still under way", agent.id, slot)
                continue
            try:
                run = agent_message_send(agent=agent, message=agent.workflow or agent.metadata.get("user_prompt"),
                                         trigger=AgentRun.Trigger.SCHEDULE)
            except ApplicationError as exc:
                logger.warning("schedule of agent %s: slot %s skipped: %s (%s)", agent.id, slot, exc.message,
                               exc.code)
                continue
            schedule.last_run_at = now
            schedule.save(update_fields=["last_run_at", "updated_at"])
            started.append(run)
    for run in started:  # after the commit, so a worker finds the run
        try:
            agent_run_queue(run=run)
        except ApplicationError:
            logger.warning("scheduled run %s could not be queued (the queue is unavailable)", run.id)
    return started


def agent_schedule_record_run(*, run: AgentRun) -> None:
    """A scheduled run ended: success resets the failure count; a failure counts, and the
    AGENT_SCHEDULE_MAX_FAILURES-th in a row pauses the schedule with the run's error as the reason."""
    if run.trigger != AgentRun.Trigger.SCHEDULE or run.status not in (AgentRun.Status.SUCCEEDED,
                                                                      AgentRun.Status.FAILED):
        return
    with transaction.atomic():
        schedule = AgentSchedule.objects.select_for_update().filter(agent_id=run.agent_id).first()
        if schedule is None:
            return
        if run.status == AgentRun.Status.SUCCEEDED:
            schedule.consecutive_failures = 0
        else:
            schedule.consecutive_failures += 1
            limit = settings.AGENT_SCHEDULE_MAX_FAILURES
            if limit > 0 and schedule.consecutive_failures >= limit and not schedule.paused_reason:
                message = (run.error or {}).get("message") or "the run failed"
                schedule.paused_reason = (f"Paused after {schedule.consecutive_failures} failed runs in a row; "
                                          f"the last: {message}")[:2000]
                logger.warning("schedule of agent %s paused: %s", run.agent_id, schedule.paused_reason)
        schedule.save(update_fields=["consecutive_failures", "paused_reason", "updated_at"])


# --- deletion ----------------------------------------------------------------------------------------

@transaction.atomic
def agent_delete(*, client: ApiClient, agent_id: Any, actor: Any = None) -> None:
    """Delete the client's agent with its runs, turns, and every credential and file it holds (each deletion
    audited). A queued or running run is marked failed first: its worker sees that and drops the outcome
    instead of writing turns for an agent that is gone (its servers stop when the run ends)."""
    from agents_app.selectors import agent_get

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


def agent_validation_restart(*, agent_id: Any, actor: Any = None) -> Agent:
    """Put a finished (ready or failed) agent back to `validating`, its error and tools cleared, so that
    agent_validate starts its servers again (a finished agent is otherwise left as it is). An agent still
    being created or validated is a 409."""
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent_id)
        if agent.status not in (Agent.Status.READY, Agent.Status.FAILED):
            raise ApplicationError(f"The agent is {agent.status}; wait for it to finish before validating again.",
                                   code="agent_busy", status=409, details={"agent_id": str(agent.id)})
        if actor is not None and agent.session is not None:
            secrets_adopt(agent=agent, actor=actor, replace=True)
        agent.status, agent.error, agent.tools = Agent.Status.VALIDATING, None, {}
        agent.progress = [*agent.progress, _progress("revalidate", "validation requested again")]
        agent.save()
        # Its credentials may change: warm servers started with the old ones stop (workers: within
        # AGENT_WARM_CHECK_SECONDS, as the agent is no longer ready).
        transaction.on_commit(lambda: warm_servers_drop(agent.id))
    return agent


def agent_revalidate(*, agent_id: Any, actor: Any = None) -> Agent:
    """Validate a finished agent again, in this process (a worker's task or a command): the same agent, its
    own credentials, plus any values sent to its session since (they replace the agent's; see
    agent_validation_restart). Blocking, like agent_validate."""
    agent_validation_restart(agent_id=agent_id, actor=actor)
    return agent_validate(agent_id=agent_id)


def agent_revalidation_queue(*, agent: Agent) -> Agent:
    """Validate a finished agent again in a worker (e.g. after its service came back or a credential was
    fixed); inline when no broker is configured."""
    agent_validation_restart(agent_id=agent.id)
    agent_validation_queue(agent=agent)
    agent.refresh_from_db()
    return agent
