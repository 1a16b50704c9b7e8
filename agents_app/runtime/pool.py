"""Warm servers: a ready agent's servers keep running between its runs, in a bounded pool per worker process.

Each pool entry is one agent's fast-agent app with every server attached, held open by one task on the pool's
event loop (a daemon thread of the process). A run hands its message to that task and waits for the outcome:
one run at a time per entry, so two runs never interleave on one stdio session (a second run of the same agent
meanwhile starts its servers cold). An entry is keyed by the agent and a fingerprint of everything its servers
and app were started with (commands, arguments, credential values, instruction, model, the model provider's
settings): a rotated credential gives
another fingerprint, and the old servers stop. Nothing is shared between agents or API clients.

An entry stops when it has been idle AGENT_WARM_IDLE_SECONDS, when its agent is deleted or no longer ready
(checked every AGENT_WARM_CHECK_SECONDS, since deletion happens in another process), when a run on it fails or
times out, when one of its servers died (found before the next run, which then starts them again), to make room
under the caps, and when the process shuts down. Its servers are sandboxed like cold ones and carry the entry's
process tag, so whatever is left of them is killed by tag.
"""

import asyncio
import atexit
import concurrent.futures
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

import psutil
from django.conf import settings
from django.db import connections

from agents_app import sandbox
from agents_app.mcp_config import LaunchSpec
from agents_app.models import Agent
from agents_app.runtime.fast_agent_session import (RunOutcome, _run_error, apply_limits, converse, failure_outcome,
                                                   remote_addresses_problem, with_agent)
from agents_app.runtime.launch import PROCESS_TAG_ENV, ServerFailure, kill_tagged, new_process_tag, sandbox_launch, \
    task_redactor
from mcpagent.redaction import Redactor

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
# Keys the fingerprints of this process only: a fingerprint reveals nothing about the credentials in it.
_FINGERPRINT_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class WarmKey:
    """Whose servers: the agent, and the API client that owns it (for the per-client cap)."""

    agent: str
    client: str


def usable_for(specs: list[LaunchSpec], model: str) -> bool:
    """Warm servers are on, and none of these servers needs a credential file: those are written for one run and
    removed after it, so a server kept running would lose its file. Not for the `playback` model either: its
    script position lives in the app and survives the agent's clear()."""
    return (settings.AGENT_WARM_SERVERS and settings.AGENT_WARM_IDLE_SECONDS > 0 and model != "playback"
            and not any(spec.file_paths for spec in specs))


def fingerprint(specs: list[LaunchSpec], instruction: str, model: str) -> str:
    # The model provider's settings too: the entry's fast-agent app was configured with them when it started.
    provider = [settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL, settings.OPENAI_API_KEY,
                settings.OPENAI_BASE_URL]
    data = json.dumps([[asdict(spec) for spec in specs], instruction, model, provider], sort_keys=True, default=str)
    return hmac.new(_FINGERPRINT_KEY, data.encode(), hashlib.sha256).hexdigest()


@dataclass
class _Request:
    message: str
    history: list[dict]
    playback: list[dict] | None
    future: concurrent.futures.Future
    watch: Callable[[Any, Redactor], None] | None = None


class _Entry:
    """One agent's running servers and the fast-agent app attached to them."""

    def __init__(self, key: WarmKey, fingerprint: str, specs: list[LaunchSpec]):
        self.key, self.fingerprint, self.specs = key, fingerprint, specs
        self.tag = new_process_tag()
        # Own tag per server (the entry's tag is their prefix): tells which server died.
        self.server_tags = {spec.name: f"{self.tag}.{index}." for index, spec in enumerate(specs)
                            if spec.transport == "stdio"}
        self.size = len(specs)
        self.workdir = tempfile.mkdtemp(prefix="mcpagent-warm-")
        self.requests: asyncio.Queue[_Request | None] = asyncio.Queue()
        self.current: _Request | None = None
        self.holder: concurrent.futures.Future | None = None
        self.failure: RunOutcome | None = None  # why its task ended, for a run that came too late to be told
        self.busy = False
        self.broken = False  # never used again; stopped when its run ends
        self.served = 0
        self.started_at = self.last_used = time.monotonic()
        self.launches: dict[str, sandbox.SandboxedLaunch] = {}


def _answer(request: _Request | None, outcome: RunOutcome) -> None:
    if request is not None and not request.future.done():
        request.future.set_result(outcome)


def _stopped_outcome() -> RunOutcome:
    return RunOutcome(ok=False, error={"server": None, "code": "run_aborted",
                                       "message": "The agent's servers were stopped while the run waited for them.",
                                       "hint": "Send the message again."})


async def _hold(entry: _Entry, *, instruction: str, model: str, startup_timeout: float, tool_timeout: int) -> None:
    """Start the entry's servers and its fast-agent app, then run its requests one by one until a None."""
    redact = task_redactor(entry.specs)
    failure: RunOutcome | None = None

    async def serve(agent: Any) -> RunOutcome | None:
        while (request := await entry.requests.get()) is not None:
            entry.current = request
            outcome = await remote_addresses_problem(entry.specs)
            if outcome is None:
                outcome = await converse(agent, message=request.message, history=request.history,
                                         playback=request.playback, redact=redact, watch=request.watch)
            outcome.warm = entry.served > 0
            entry.served += 1
            apply_limits(outcome, entry.specs, entry.launches)
            _answer(request, outcome)
            entry.current = None
        return None

    try:
        with ExitStack() as stack:
            for spec in entry.specs:
                if spec.transport == "stdio":
                    try:
                        entry.launches[spec.name] = stack.enter_context(
                            sandbox_launch(spec, tag=entry.server_tags[spec.name]))
                    except ServerFailure as exc:
                        failure = failure_outcome(spec.name, exc)
                        break
            if failure is None:
                failure = await with_agent(specs=entry.specs, launches=entry.launches, redact=redact,
                                           instruction=instruction, model=model, startup_timeout=startup_timeout,
                                           tool_timeout=tool_timeout, workdir=entry.workdir, use=serve)
    except Exception as exc:  # noqa: BLE001 -- answered to the waiting run, never kills the pool's loop
        failure = RunOutcome(ok=False, error=_run_error(redact, exc))
    finally:
        entry.broken = True
        entry.failure = failure
        kill_tagged(entry.tag, wait=False)
        _answer(entry.current, failure or _stopped_outcome())
        while not entry.requests.empty():
            _answer(entry.requests.get_nowait(), failure or _stopped_outcome())
        shutil.rmtree(entry.workdir, ignore_errors=True)


def _too_old(entry: _Entry) -> bool:
    """A run must not start on servers the sandbox's wall-clock limit (SANDBOX_WALL_SECONDS) could stop during it."""
    age = time.monotonic() - entry.started_at
    return age + settings.AGENT_RUN_TIMEOUT_SECONDS >= settings.SANDBOX_WALL_SECONDS


def _agents_still_ready(agent_ids: set[str]) -> set[str]:
    try:
        return {str(pk) for pk in Agent.objects.filter(id__in=agent_ids, status=Agent.Status.READY)
                .values_list("id", flat=True)}
    finally:
        connections.close_all()  # this runs in a short-lived executor thread: its connection goes with it


class WarmPool:
    """The warm entries of this process, their event loop thread, and the caps."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._stopping: list[_Entry] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._checked_at = time.monotonic()

    # --- runs ----------------------------------------------------------------------------------------

    def run(self, key: WarmKey, *, specs: list[LaunchSpec], instruction: str, model: str, message: str,
            history: list[dict], playback: list[dict] | None, startup_timeout: float, tool_timeout: int,
            run_timeout: float, timeout_outcome: Callable[[float], RunOutcome],
            watch: Callable[[Any, Redactor], None] | None = None) -> RunOutcome | None:
        """The run on the agent's warm servers (started now if there are none); None when the pool has no room
        for them or they are busy with another run: the caller then runs cold. Callers hold _RUN_LOCK."""
        entry = self._entry_for(key, fingerprint(specs, instruction, model), specs, instruction=instruction,
                                model=model, startup_timeout=startup_timeout, tool_timeout=tool_timeout)
        if entry is None:
            return None
        request = _Request(message=message, history=history, playback=playback, watch=watch,
                           future=concurrent.futures.Future())
        outcome: RunOutcome | None = None
        previous_cwd = os.getcwd()
        try:
            # fast-agent reads ./.env and its config from the working directory when the app starts.
            os.chdir(entry.workdir)
            self._loop.call_soon_threadsafe(entry.requests.put_nowait, request)
            deadline = time.monotonic() + run_timeout
            while outcome is None:
                try:
                    outcome = request.future.result(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
                except concurrent.futures.TimeoutError:
                    if time.monotonic() >= deadline:
                        outcome = timeout_outcome(run_timeout)
                    elif entry.holder.done() and not request.future.done():
                        # Its task ended before it read this request (e.g. a server failed to start at once).
                        outcome = entry.failure or _stopped_outcome()
        finally:
            os.chdir(previous_cwd)
            with self._lock:
                entry.busy, entry.last_used = False, time.monotonic()
                # A failed or interrupted run may have left a server or the session in a bad state.
                if outcome is None or not outcome.ok or outcome.limits:
                    entry.broken = True
                if entry.broken:
                    self._stop(entry, force=True, reason="its run failed")
        return outcome

    def _entry_for(self, key: WarmKey, fingerprint: str, specs: list[LaunchSpec], **start: Any) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key.agent)
            if entry is not None and entry.busy:
                return None
            if entry is not None:
                problem = ("stopped" if entry.broken else "its servers changed" if entry.fingerprint != fingerprint
                           or entry.key != key else "near the sandbox's wall-clock limit" if _too_old(entry)
                           else None if self._servers_alive(entry) else "a server died")
                if problem:
                    self._stop(entry, force=True, reason=problem)
                    entry = None
            if entry is None:
                if not self._make_room(key.client, len(specs)):
                    return None
                entry = _Entry(key, fingerprint, specs)
                entry.holder = asyncio.run_coroutine_threadsafe(_hold(entry, **start), self._ensure_loop())
                self._entries[key.agent] = entry
            entry.busy = True
            return entry

    def _servers_alive(self, entry: _Entry) -> bool:
        """Every stdio server of the entry still has a live process among this process's descendants."""
        alive: set[str] = set()
        for proc in psutil.Process().children(recursive=True):
            try:
                value = proc.environ().get(PROCESS_TAG_ENV, "")
                if value.startswith(entry.tag) and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.update(name for name, tag in entry.server_tags.items() if value.startswith(tag))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue
        return alive == set(entry.server_tags)

    # --- caps, stops ---------------------------------------------------------------------------------

    def _make_room(self, client: str, size: int) -> bool:
        """Stop the least recently used idle entries until `size` more servers fit under both caps."""
        per_worker, per_client = settings.AGENT_WARM_MAX_SERVERS_PER_WORKER, settings.AGENT_WARM_MAX_SERVERS_PER_CLIENT
        if size > per_worker or size > per_client:
            return False

        def used(of_client: str | None = None) -> int:
            return sum(e.size for e in self._entries.values() if of_client is None or e.key.client == of_client)

        idle = sorted((e for e in self._entries.values() if not e.busy), key=lambda e: e.last_used)
        for entry in idle:
            if used(client) + size <= per_client:
                break
            if entry.key.client == client:
                self._stop(entry, reason="room for another agent of its client")
        for entry in idle:
            if used() + size <= per_worker:
                break
            if self._entries.get(entry.key.agent) is entry:
                self._stop(entry, reason="room for another agent")
        return used(client) + size <= per_client and used() + size <= per_worker

    def _stop(self, entry: _Entry, *, force: bool = False, reason: str = "") -> None:
        """Stop an entry that no run holds: politely (its app closes the servers' stdin), or `force`: kill its
        servers and cancel its task. Does not wait; shutdown() does."""
        with self._lock:
            if self._entries.get(entry.key.agent) is entry:
                del self._entries[entry.key.agent]
            entry.broken = True
            self._stopping = [e for e in self._stopping if e.holder and not e.holder.done()] + [entry]
        logger.info("warm servers of agent %s stopped: %s", entry.key.agent, reason)
        if force:
            kill_tagged(entry.tag, wait=False)
        if self._loop is not None and entry.holder is not None and not entry.holder.done():
            self._loop.call_soon_threadsafe(entry.requests.put_nowait, None)
            if force:
                entry.holder.cancel()

    def drop_agent(self, agent_id: str) -> None:
        """Stop the agent's warm servers (deleted or revalidated); a run holding them stops them when it ends."""
        with self._lock:
            entry = self._entries.get(str(agent_id))
            if entry is None:
                return
            if entry.busy:
                entry.broken = True
            else:
                self._stop(entry, reason="agent deleted or revalidated")

    def server_count(self) -> int:
        with self._lock:
            return sum(entry.size for entry in self._entries.values())

    # --- the loop ------------------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="mcpagent-warm-servers", daemon=True)
            self._thread.start()
            self._loop = loop
            asyncio.run_coroutine_threadsafe(self._maintain(), loop)
        return self._loop

    async def _maintain(self) -> None:
        """Stop idle entries, and those whose agent is gone or no longer ready."""
        while True:
            await asyncio.sleep(max(0.2, min(1.0, settings.AGENT_WARM_IDLE_SECONDS / 4)))
            now = time.monotonic()
            with self._lock:
                for entry in list(self._entries.values()):
                    if not entry.busy and now - entry.last_used > settings.AGENT_WARM_IDLE_SECONDS:
                        self._stop(entry, reason="idle")
                agent_ids = set(self._entries)
            if not agent_ids or now - self._checked_at < settings.AGENT_WARM_CHECK_SECONDS:
                continue
            self._checked_at = now
            try:
                ready = await asyncio.to_thread(_agents_still_ready, agent_ids)
            except Exception as exc:  # noqa: BLE001 -- the database may be briefly unavailable; next time
                logger.warning("could not check the warm agents: %s", type(exc).__name__)
                continue
            for agent_id in agent_ids - ready:
                self.drop_agent(agent_id)

    def shutdown(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every entry (politely, then by kill after `grace` seconds) and the loop thread."""
        with self._lock:
            entries = [*self._entries.values(), *self._stopping]
            for entry in list(self._entries.values()):
                self._stop(entry, reason="the process stops")
        deadline = time.monotonic() + grace
        for entry in entries:
            if entry.holder is not None:
                try:
                    entry.holder.result(timeout=max(0.0, deadline - time.monotonic()))
                except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                    entry.holder.cancel()
                except Exception as exc:  # noqa: BLE001 -- _hold answers its own failures; shutting down regardless
                    logger.debug("warm entry %s ended with %s while stopping", entry.key, type(exc).__name__)
            kill_tagged(entry.tag)
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._stop_loop(), self._loop)
            if self._thread is not None:
                self._thread.join(timeout=2)
            if not self._loop.is_running():
                self._loop.close()
        self._loop, self._thread, self._stopping = None, None, []

    async def _stop_loop(self) -> None:
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.sleep(0)  # let them see their cancellation
        asyncio.get_running_loop().stop()


_pool: WarmPool | None = None
_pool_lock = threading.Lock()


def warm_pool() -> WarmPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WarmPool()
        return _pool


def warm_servers_drop(agent_id: Any) -> None:
    """Stop this process's warm servers of the agent (other processes notice within AGENT_WARM_CHECK_SECONDS)."""
    if _pool is not None:
        _pool.drop_agent(str(agent_id))


def warm_servers_shutdown() -> None:
    """Stop every warm server of this process (worker process shutdown, interpreter exit)."""
    if _pool is not None:
        _pool.shutdown()


def _forget_after_fork() -> None:
    # A forked child (a Celery prefork process) has neither the parent's loop thread nor its servers.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(warm_servers_shutdown)
