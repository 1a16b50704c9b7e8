"""What a run did, as events people can watch: recorded in the worker while fast-agent runs, read back as a
Server-Sent Events stream by the web.

Recording: RunRecorder.watch wraps the fast-agent agent's `call_tool` (the one path every MCP tool call of the
agent takes, model-driven or scripted), so each call gives a `tool_started` and a `tool_finished` event with
its arguments redacted by the task's Redactor, its duration, result size and error. While the run is live the
events go to a Redis list per run (when REDIS_URL is set); when it ends they are stored as AgentRunEvent rows in
the same transaction as the run's outcome, ending with `done`.

Reading: run_event_stream replays what already happened, then follows the run by polling (the Redis list while it
runs, the table once it ended) until `done` or RUN_EVENTS_STREAM_SECONDS. Polling rather than pub/sub: a
subscriber that connects late or reconnects (Last-Event-ID) needs the history anyway, and a list read is one
round trip with nothing to unsubscribe. The web runs gunicorn sync workers, so each open stream holds a worker:
hence the time bound, after which the client reconnects with Last-Event-ID.
"""

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents_app.models import AgentRun, AgentRunEvent
from mcpagent.redaction import Redactor

logger = logging.getLogger(__name__)

KEY_TTL_SECONDS = 3600
MAX_TEXT_CHARS = 4000
MAX_ERROR_CHARS = 800
_FINISHED = (AgentRun.Status.SUCCEEDED, AgentRun.Status.FAILED)


def _key(run_id: Any) -> str:
    return f"mcpagent:run-events:{run_id}"


def _redis() -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


class RunRecorder:
    """Collects one run's events in order; see the module docstring."""

    def __init__(self, run_id: Any) -> None:
        self.run_id = run_id
        self.events: list[dict] = []
        self._redis = _redis()
        self._calls = 0

    def emit(self, kind: str, data: dict, *, live: bool = True) -> dict:
        event = {"seq": len(self.events) + 1, "kind": kind, "data": data, "at": timezone.now().isoformat()}
        self.events.append(event)
        if live:
            self._push(event)
        return event

    def _push(self, event: dict) -> None:
        if self._redis is None:
            return
        try:
            pipe = self._redis.pipeline()
            pipe.rpush(_key(self.run_id), json.dumps(event))
            pipe.expire(_key(self.run_id), KEY_TTL_SECONDS)
            pipe.execute()
        except redis.RedisError as exc:  # watching live is lost, the run and its stored events are not
            logger.warning("run %s: live events unavailable (%s)", self.run_id, type(exc).__name__)
            self._redis = None

    def watch(self, agent: Any, redact: Redactor) -> None:
        """Record every tool call the fast-agent `agent` makes from now on."""
        original = agent.call_tool

        async def call_tool(name: str, arguments: dict | None = None, tool_use_id: str | None = None,
                            **kwargs: Any) -> Any:
            self._calls += 1
            server, _, short = name.rpartition("__")
            base = {"call_id": tool_use_id or f"call-{self._calls}", "tool": short or name, "server": server or None}
            self.emit(AgentRunEvent.Kind.TOOL_STARTED, {**base, "arguments": redact.redact_data(arguments or {})})
            started = time.perf_counter()
            try:
                result = await original(name, arguments, tool_use_id, **kwargs)
            except BaseException as exc:
                self.emit(AgentRunEvent.Kind.TOOL_FINISHED, {
                    **base, "duration_ms": _ms(started), "result_chars": 0, "is_error": True,
                    "error": redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]})
                raise
            text = "\n".join(getattr(c, "text", "") for c in (getattr(result, "content", None) or [])
                             if getattr(c, "type", "") == "text")
            is_error = bool(getattr(result, "is_error", False))
            self.emit(AgentRunEvent.Kind.TOOL_FINISHED, {
                **base, "duration_ms": _ms(started), "result_chars": len(text), "is_error": is_error,
                "error": redact(text)[:MAX_ERROR_CHARS] if is_error else None})
            return result

        agent.call_tool = call_tool

    def finish(self, run: AgentRun) -> None:
        """Inside the transaction that stores the run's outcome: the reply as `text`, then `done`, and every event
        stored. `done` reaches live watchers once the outcome is committed."""
        if run.reply:
            self.emit(AgentRunEvent.Kind.TEXT, {"text": run.reply[:MAX_TEXT_CHARS]})
        done = self.emit(AgentRunEvent.Kind.DONE, done_data(run), live=False)
        AgentRunEvent.objects.bulk_create([
            AgentRunEvent(run_id=run.pk, seq=e["seq"], kind=e["kind"], data=e["data"], at=e["at"])
            for e in self.events
        ])
        transaction.on_commit(lambda: self._push(done))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def done_data(run: AgentRun) -> dict:
    error = run.error or {}
    return {"status": run.status, "error": {"code": error.get("code"), "message": error.get("message")}
            if run.error else None}


# --- reading -----------------------------------------------------------------------------------------

def sse(event: dict) -> str:
    return f"id: {event['seq']}\nevent: {event['kind']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


def run_event_stream(*, run: AgentRun, after: int = 0, max_seconds: float | None = None,
                     poll_seconds: float = 0.2) -> Iterator[str]:
    """SSE text for the run's events with seq > `after`: what already happened, then live until `done`; at most
    `max_seconds` (RUN_EVENTS_STREAM_SECONDS), then a `timeout` event (reconnect with Last-Event-ID)."""
    max_seconds = settings.RUN_EVENTS_STREAM_SECONDS if max_seconds is None else max_seconds
    deadline = time.monotonic() + max_seconds
    keepalive_at = time.monotonic() + 15
    client = _redis()
    sent = after
    yield "retry: 2000\n\n"
    while True:
        status = AgentRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        if status is None:  # the agent was deleted with its runs
            yield sse({"seq": sent + 1, "kind": "done", "data": {"status": "deleted", "error": None}})
            return
        if status in _FINISHED:
            for event in AgentRunEvent.objects.filter(run_id=run.pk, seq__gt=sent).order_by("seq"):
                sent = event.seq
                yield sse({"seq": event.seq, "kind": event.kind, "data": event.data, "at": event.at.isoformat()})
                if event.kind == AgentRunEvent.Kind.DONE:
                    return
            # Ended without recorded events (stopped by its time limit, or by the agent's deletion).
            finished = AgentRun.objects.filter(pk=run.pk).first()
            yield sse({"seq": sent + 1, "kind": "done", "data": done_data(finished) if finished else
                       {"status": "deleted", "error": None}})
            return
        for event in _live_events(client, run.pk, sent):
            sent = event["seq"]
            yield sse(event)
            if event["kind"] == AgentRunEvent.Kind.DONE:
                return
        now = time.monotonic()
        if now >= deadline:
            yield sse({"seq": sent, "kind": "timeout",
                       "data": {"message": f"This stream ends after {max_seconds:g} s; reconnect with "
                                           f"Last-Event-ID: {sent} to go on."}})
            return
        if now >= keepalive_at:
            keepalive_at = now + 15
            yield ": keep-alive\n\n"
        time.sleep(poll_seconds)


def _live_events(client: redis.Redis | None, run_id: Any, after: int) -> list[dict]:
    if client is None:
        return []
    try:
        raw = client.lrange(_key(run_id), after, -1)  # seq n is at index n-1
    except redis.RedisError:
        return []
    return [json.loads(item) for item in raw]
