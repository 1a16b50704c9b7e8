"""run_agent: one user message through a fast-agent agent attached to the agent's servers. Warm when the caller
gives a WarmKey and the pool has room (agents_app.runtime.pool: the servers keep running between runs), cold
otherwise (every server started for this run and stopped before it returns)."""

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from django.conf import settings

from agents_app import sandbox
from agents_app.mcp_config import LaunchSpec
from agents_app.runtime import pool
from agents_app.runtime.fast_agent_session import (RunOutcome, _run_error, apply_limits, converse, failure_outcome,
                                                   remote_addresses_problem, with_agent)
from agents_app.runtime.launch import _RUN_LOCK, ServerFailure, kill_tagged, new_process_tag, run_sync, sandbox_launch, \
    task_redactor
from mcpagent.redaction import Redactor


def run_timeout_outcome(run_timeout: float) -> RunOutcome:
    return RunOutcome(ok=False, error={
        "server": None, "code": "run_timeout",
        "message": f"The run took longer than {run_timeout:g} s and was stopped.",
        "hint": "Try a shorter request, or raise AGENT_RUN_TIMEOUT_SECONDS.",
    })


def run_agent(*, specs: list[LaunchSpec], instruction: str, model: str, message: str,
              history: list[dict] | None = None, playback: list[dict] | None = None,
              startup_timeout: float | None = None, tool_timeout: int | None = None,
              run_timeout: float | None = None, warm: pool.WarmKey | None = None,
              watch: Callable[[Any, Redactor], None] | None = None) -> RunOutcome:
    """Run one user message through a fast-agent agent attached to `specs`. Never raises for agent
    failures (including fast-agent's SystemExit on start-up errors): see RunOutcome.error. The whole run is
    bounded by `run_timeout` (AGENT_RUN_TIMEOUT_SECONDS) here, so also without a Celery worker's time limit.
    `warm`: whose servers these are (agent and API client); their servers may then be kept running for the
    agent's next run (see agents_app.runtime.pool). `watch(agent, redact)` is called with the fast-agent agent
    before the message is sent (agents_app.run_events)."""
    startup_timeout = startup_timeout or settings.AGENT_VALIDATION_TIMEOUT_SECONDS
    tool_timeout = tool_timeout or settings.AGENT_TOOL_TIMEOUT_SECONDS
    run_timeout = run_timeout or settings.AGENT_RUN_TIMEOUT_SECONDS
    started = time.monotonic()
    with _RUN_LOCK:
        outcome = None
        if warm is not None and pool.usable_for(specs, model):
            outcome = pool.warm_pool().run(
                warm, specs=specs, instruction=instruction, model=model, message=message, history=history or [],
                playback=playback, startup_timeout=startup_timeout, tool_timeout=tool_timeout,
                run_timeout=run_timeout, timeout_outcome=run_timeout_outcome, watch=watch)
        if outcome is None:  # not poolable, or no room in the pool: servers started for this run only
            outcome = _run_cold(specs=specs, instruction=instruction, model=model, message=message,
                                history=history or [], playback=playback, startup_timeout=startup_timeout,
                                tool_timeout=tool_timeout, run_timeout=run_timeout, watch=watch)
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome


def _run_cold(*, specs: list[LaunchSpec], instruction: str, model: str, message: str, history: list[dict],
              playback: list[dict] | None, startup_timeout: float, tool_timeout: int,
              run_timeout: float, watch: Callable[[Any, Redactor], None] | None = None) -> RunOutcome:
    tag = new_process_tag()
    workdir = tempfile.mkdtemp(prefix="mcpagent-run-")
    previous_cwd = os.getcwd()
    try:
        # fast-agent reads ./fastagent.config.yaml and ./.env: run from an empty private directory.
        os.chdir(workdir)
        outcome = run_sync(lambda: asyncio.wait_for(_run_cold_async(
            specs=specs, instruction=instruction, model=model, message=message, history=history,
            playback=playback, startup_timeout=startup_timeout, tool_timeout=tool_timeout, tag=tag,
            workdir=workdir, watch=watch,
        ), timeout=run_timeout))
    except TimeoutError:
        outcome = run_timeout_outcome(run_timeout)
    except SystemExit as exc:
        outcome = RunOutcome(ok=False, error=_run_error(task_redactor(specs),
                                                        exc.__cause__ or exc.__context__ or exc))
    finally:
        os.chdir(previous_cwd)
        leftover = kill_tagged(tag)
        shutil.rmtree(workdir, ignore_errors=True)
    outcome.leftover_processes = leftover
    return outcome


async def _run_cold_async(*, specs: list[LaunchSpec], instruction: str, model: str, message: str,
                          history: list[dict], playback: list[dict] | None, startup_timeout: float,
                          tool_timeout: int, tag: str, workdir: str,
                          watch: Callable[[Any, Redactor], None] | None = None) -> RunOutcome:
    problem = await remote_addresses_problem(specs)
    if problem is not None:
        return problem
    redact = task_redactor(specs)
    with ExitStack() as launches:
        started: dict[str, sandbox.SandboxedLaunch] = {}
        for spec in specs:
            if spec.transport == "stdio":
                try:
                    started[spec.name] = launches.enter_context(sandbox_launch(spec, tag=tag))
                except ServerFailure as failure:
                    return failure_outcome(spec.name, failure)

        async def use(agent):
            outcome = await converse(agent, message=message, history=history, playback=playback, redact=redact,
                                     watch=watch)
            # The run is over: stopped now, the servers do not make the app's exit wait for their shutdown
            # (about 0.8 s for mcp-server-time).
            kill_tagged(tag, wait=False, sig=signal.SIGTERM)
            return outcome

        outcome = await with_agent(specs=specs, launches=started, redact=redact, instruction=instruction,
                                   model=model, startup_timeout=startup_timeout, tool_timeout=tool_timeout,
                                   workdir=workdir, use=use)
        kill_tagged(tag, wait=False)
        apply_limits(outcome, specs, started)
    return outcome
