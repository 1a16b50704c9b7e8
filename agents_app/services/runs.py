"""Agent runs: a message recorded with a queued run, the run handed to a worker, and executed there with
fast-agent against the agent's servers, every tool call, result and the reply stored as conversation turns."""

import logging
from contextlib import ExitStack
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents_app.models import Agent, AgentRun, Conversation
from agents_app.queueing import AGENT_RUN_TASK, task_send_or_unavailable
from agents_app.run_events import RunRecorder
from agents_app.runtime import WarmKey, run_agent, task_redactor, warm_servers_drop
from agents_app.secrets import secrets_redactor
from agents_app.services.inputs import MAX_MESSAGE_CHARS, check_model, check_text
from agents_app.services.launch import agent_launch, launch_error
from agents_app.services.limits import in_progress_check
from agents_app.services.schedule_outcomes import agent_schedule_record_run
from mcpagent.errors import ApplicationError
from mcpagent.metrics import AGENT_RUNS

logger = logging.getLogger(__name__)

HISTORY_TURNS = 20


def agent_message_send(*, agent: Agent, message: str, model: str | None = None, actor: Any = None,
                       trigger: str = AgentRun.Trigger.MESSAGE) -> AgentRun:
    """Record the user's message and a queued run; the caller dispatches it (agent_run_queue)."""
    message = check_text(message, field="message", limit=MAX_MESSAGE_CHARS)
    if agent.status != Agent.Status.READY:
        raise ApplicationError(
            f"The agent is {agent.status}; only a ready agent runs messages.", code="agent_not_ready", status=409,
            details={"status": agent.status, "error": agent.error},
        )
    model = check_model(model or agent.model)
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
    task_send_or_unavailable(AGENT_RUN_TASK, run.id, field="run_id",
                             abandon=lambda reason: agent_run_abandon(run_id=run.id, reason=reason))


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
            return _run_failed(run, launch_error(exc), recorder=recorder)
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
