"""A run watched live over real HTTP: a real Celery worker runs it, the live server streams its events as
Server-Sent Events (live while it runs, replayed after), and Last-Event-ID resumes where a client left off."""

import json
import time

import httpx
import pytest

from agents_app.models import AgentRun
from tests.agents_app.conftest import script
from tests.agents_app.test_worker import wait_until

pytestmark = pytest.mark.worker


def read_events(url: str, key: str, *, last_event_id: int | None = None, on_event=None) -> list[dict]:
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    events = []
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[len("data: "):])
                events.append(event)
                if on_event:
                    on_event(event)
    return events


def test_sse_client_receives_a_runs_events_in_order_live_then_replayed(celery_worker, live_server, api, settings,
                                                                      redis_url, test_servers):
    settings.REDIS_URL = redis_url  # the web reads live events from the Redis the worker writes to
    agent_id = api.post("/api/agents/create", {"mcp_config": {"mcpServers": {"echo": script("echo_args")}},
                                               "user_prompt": "Wait", "workflow": "Wait a second",
                                               "model": "passthrough"}, format="json").json()["agent_id"]
    assert wait_until(lambda: api.get(f"/api/agents/{agent_id}").json()["status"],
                      lambda s: s in ("ready", "failed")) == "ready"
    settings.AGENT_RUN_WAIT_SECONDS = 0
    started = api.post(f"/api/agents/{agent_id}/messages", {"message": '***CALL_TOOL pause {"seconds": 2}'},
                       format="json")
    assert started.status_code == 202, started.content
    run_id = started.json()["run_id"]
    url = f"{live_server.url}/api/agents/{agent_id}/runs/{run_id}/events"

    status_when_seen = {}
    events = read_events(url, api.raw_key, on_event=lambda e: status_when_seen.setdefault(
        e["kind"], AgentRun.objects.get(pk=run_id).status))
    assert [e["kind"] for e in events] == ["tool_started", "tool_finished", "text", "done"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[0]["data"] == {"call_id": events[0]["data"]["call_id"], "tool": "pause", "server": None,
                                 "arguments": {"seconds": 2}}
    assert events[1]["data"]["duration_ms"] >= 1900 and events[1]["data"]["is_error"] is False
    assert events[3]["data"] == {"status": "succeeded", "error": None}
    assert status_when_seen["tool_started"] == "running"  # followed live, not only replayed

    replayed = read_events(url, api.raw_key)
    assert [(e["seq"], e["kind"], e["data"]) for e in replayed] == [(e["seq"], e["kind"], e["data"]) for e in events]
    resumed = read_events(url, api.raw_key, last_event_id=2)
    assert [e["kind"] for e in resumed] == ["text", "done"]

    other = httpx.get(url, headers={"Authorization": "Bearer nope", "Accept": "text/event-stream"})
    assert other.status_code == 401


def test_stream_is_bounded_in_time(celery_worker, live_server, api, settings, redis_url):
    settings.RUN_EVENTS_STREAM_SECONDS = 1
    from agents_app.models import Agent

    agent = Agent.objects.create(client=api.client_obj, status=Agent.Status.READY, model="passthrough")
    run = AgentRun.objects.create(agent=agent, message="m", model="passthrough", status=AgentRun.Status.RUNNING)
    began = time.monotonic()
    events = read_events(f"{live_server.url}/api/agents/{agent.id}/runs/{run.id}/events", api.raw_key)
    assert time.monotonic() - began < 10
    assert [e["kind"] for e in events] == ["timeout"] and "Last-Event-ID" in events[0]["data"]["message"]
