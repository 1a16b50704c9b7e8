"""Agent validation: each server started with its credentials and its tools listed, the agent ending `ready` or
`failed`; its hand-off to a worker, and validating a finished agent again."""

import logging
import time
from contextlib import ExitStack
from typing import Any

from django.conf import settings
from django.db import transaction

from agents_app import mcp_config
from agents_app.models import Agent
from agents_app.queueing import AGENT_VALIDATE_TASK, task_send_or_unavailable
from agents_app.oauth_retry import validation_retry_after_oauth_refresh
from agents_app.remote_auth import authorization_prepare, validation_retry_after_refresh
from agents_app.runtime import validate_servers, warm_servers_drop
from agents_app.sandbox import prefetch
from agents_app.secrets import credential_scope, secrets_adopt, secrets_record_validation
from agents_app.services.launch import agent_launch, launch_error
from agents_app.services.progress import progress_append, progress_entry
from mcpagent.errors import ApplicationError
from mcpagent.metrics import AGENT_CREATIONS

logger = logging.getLogger(__name__)


def agent_validate(*, agent_id: Any) -> Agent:
    """Start each server with its credentials, initialize, list its tools, stop it; the agent ends `ready`
    (tools per server) or `failed` (error: which server, what happened, what to do). Idempotent for a
    finished agent. Blocking: call it from a worker (agent_validate_task) or a command."""
    agent = Agent.objects.select_related("client", "session").get(pk=agent_id)
    if agent.status in (Agent.Status.READY, Agent.Status.FAILED):
        return agent
    warm_servers_drop(agent.id)  # revalidation: servers kept warm by this process may hold old credentials
    progress_append(agent.id, progress_entry("validating", "starting MCP servers"), status=Agent.Status.VALIDATING)
    started = time.monotonic()
    with ExitStack() as stack:
        try:
            specs = stack.enter_context(agent_launch(agent, reason="agent_validate"))
        except ApplicationError as exc:
            error = launch_error(exc)
            progress_append(agent.id, progress_entry("failed", exc.message), status=Agent.Status.FAILED, error=error)
            AGENT_CREATIONS.labels(outcome=Agent.Status.FAILED).inc()
            return _finished(agent.id)
        packages = [(spec.command, spec.args) for spec in specs if not prefetch.is_prefetched(spec.command, spec.args)]
        if packages:
            progress_append(agent.id, progress_entry("fetching", f"fetching {len(packages)} package(s) into the cache"))
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
            agent.progress = [*agent.progress, progress_entry("server_ok" if result.ok else "server_failed", detail,
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
            agent.progress = [*agent.progress, progress_entry("failed", failures[0]["message"])]
        else:
            agent.status = Agent.Status.READY
            agent.error = None
            agent.progress = [*agent.progress, progress_entry("ready", f"{sum(map(len, tools.values()))} tool(s) validated")]
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
        progress_append(agent_id, progress_entry("failed", error["message"]), status=Agent.Status.FAILED, error=error)


def agent_validation_queue(*, agent: Agent) -> None:
    """Hand validation to a worker (inline when no broker is configured). The task takes only the id."""
    task_send_or_unavailable(AGENT_VALIDATE_TASK, agent.id, field="agent_id",
                             abandon=lambda reason: agent_validation_abandon(agent_id=agent.id, reason=reason))


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
        agent.progress = [*agent.progress, progress_entry("revalidate", "validation requested again")]
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
