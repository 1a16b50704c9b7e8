"""A real Celery worker (Redis broker, prefork) creates agents and runs messages end to end; failures never
take the worker down and leave no server process behind."""

import socket
import time

import psutil
import pytest

from agents_app.models import Agent
from tests.agents_app.conftest import TIME_SERVER, leftover_server_processes, script

pytestmark = pytest.mark.worker


def wait_until(fetch, done, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def worker_pids(worker) -> list[int]:
    return [worker.pid] + [p.pid for p in psutil.Process(worker.pid).children(recursive=True)]


def test_worker_creates_agents_and_runs_messages(celery_worker, api, settings, test_servers):
    settings.AGENT_CREATE_WAIT_SECONDS = 0  # answer at once: 202, then poll
    body = {"mcp_config": {"mcpServers": {"time": TIME_SERVER}}, "user_prompt": "Time in UTC",
            "workflow": "Get the time", "model": "passthrough"}
    response = api.post("/api/agents/create", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["agent"]["status"] in ("creating", "validating")
    agent_id = response.json()["agent_id"]
    detail = wait_until(lambda: api.get(f"/api/agents/{agent_id}").json(), lambda d: d["status"] in ("ready", "failed"))
    assert detail["status"] == "ready", detail["error"]
    assert detail["tools"]["time"] == ["get_current_time", "convert_time"]

    settings.AGENT_CREATE_WAIT_SECONDS = 30
    failing = {**body, "mcp_config": {"mcpServers": {"broken": script("crashing")}}}
    error = api.post("/api/agents/create", failing, format="json").json()["error"]
    assert error["code"] == "agent_validation_failed" and "configuration file is corrupt" in error["message"]

    response = api.post(f"/api/agents/{agent_id}/messages",
                        {"message": '***CALL_TOOL get_current_time {"timezone": "UTC"}'}, format="json")
    assert response.status_code == 200, response.content
    assert '"timezone":"UTC"' in response.json()["reply"]
    roles = [t["role"] for t in api.get(f"/api/agents/{agent_id}/messages").json()["turns"]]
    assert roles == ["user", "tool", "tool", "assistant"]

    # A run that fails inside fast-agent (a Claude model, and no API key on the worker) is an error for the
    # client, not a dead worker.
    assert not settings.ANTHROPIC_API_KEY
    Agent.objects.filter(pk=agent_id).update(model="sonnet")
    failed = api.post(f"/api/agents/{agent_id}/messages", {"message": "hi"}, format="json")
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "agent_run_failed"

    assert celery_worker.poll() is None
    from mcpagent.celery import app

    assert app.control.inspect(timeout=2, destination=[f"{celery_worker.queue}@{socket.gethostname()}"]).ping()
    assert not leftover_server_processes(worker_pids(celery_worker))


def test_run_that_outlasts_the_wait_answers_202_with_a_run_to_poll(celery_worker, api, settings):
    body = {"mcp_config": {"mcpServers": {"time": TIME_SERVER}}, "user_prompt": "Time in UTC",
            "workflow": "Get the time", "model": "passthrough"}
    agent_id = api.post("/api/agents/create", body, format="json").json()["agent_id"]
    wait_until(lambda: Agent.objects.get(pk=agent_id).status, lambda s: s in ("ready", "failed"))
    settings.AGENT_RUN_WAIT_SECONDS = 0
    response = api.post(f"/api/agents/{agent_id}/messages",
                        {"message": '***CALL_TOOL get_current_time {"timezone": "UTC"}'}, format="json")
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    run = wait_until(lambda: api.get(f"/api/agents/{agent_id}/runs/{run_id}").json(),
                     lambda r: r["status"] in ("succeeded", "failed"))
    assert run["status"] == "succeeded" and '"timezone":"UTC"' in run["reply"]
    assert run["tool_calls"][0]["tool"] == "get_current_time"
