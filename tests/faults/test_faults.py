"""Faults on the production set-up (tests/faults/stack.py: gunicorn, a Celery worker, Redis, PostgreSQL, all real
processes of this test module's own): each fault loses nothing and ends in a clear outcome."""

import shutil
import signal
import time

import httpx
import pytest

from tests.faults.stack import SERVERS, Stack, wait_until

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]
# Short enough for a test, longer than the validations here: a task a killed worker held is handed out again after it.
VISIBILITY_TIMEOUT = 12


@pytest.fixture(scope="module")
def stack():
    stack = Stack(CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT), CELERY_TASK_TIME_LIMIT="10",
                  CELERY_TASK_SOFT_TIME_LIMIT="8")
    try:
        stack.set_up()
        stack.start_web(wait=False)
        stack.start_worker(wait=False)
        stack.wait_web()
        stack.wait_worker()
        yield stack
    finally:
        stack.tear_down()


def _slow_agent_body(seconds: float, name: str) -> dict:
    return {"mcp_config": {"mcpServers": {"slow": {"command": "python",
                                                   "args": [str(SERVERS / "slow_start.py"), str(seconds)]}}},
            "user_prompt": "answer pings", "workflow": ["ping the server"], "model": "passthrough", "name": name}


def _agent(api: httpx.Client, agent_id: str) -> dict:
    response = api.get(f"/api/agents/{agent_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_worker_killed_during_agent_creation_the_task_runs_again_once(stack):
    with stack.client() as api:
        response = api.post("/api/agents/create", json=_slow_agent_body(6, "killed-worker"))
        assert response.status_code == 202, response.text
        agent_id = response.json()["agent_id"]
        wait_until(lambda: _agent(api, agent_id)["status"] == "validating", timeout=20, what="validation to start")
        time.sleep(1)  # the slow server is starting
        killed_at = time.monotonic()
        stack.stop("worker", signal.SIGKILL)
        assert _agent(api, agent_id)["status"] == "validating"
        # A worker started once the task's visibility timeout has passed takes it up again (acks_late: the killed
        # worker never acknowledged it).
        time.sleep(max(0.0, VISIBILITY_TIMEOUT + 1 - (time.monotonic() - killed_at)))
        stack.start_worker()
        agent = wait_until(lambda: (a := _agent(api, agent_id))["status"] in ("ready", "failed") and a,
                           timeout=45, what="the agent to be validated again")
        assert agent["status"] == "ready", agent
        assert agent["tools"] == {"slow": ["ping"]}
        agents = [a for a in api.get("/api/agents").json()["agents"] if a["name"] == "killed-worker"]
        assert len(agents) == 1
        # Started twice (the killed attempt and the retry), finished once.
        stages = [step["step"] for step in agent["progress"]]
        assert stages.count("validating") == 2 and stages.count("ready") == 1, stages


def test_redis_restart_requests_fail_clearly_then_recover(stack):
    chat = {"message": "send a slack message every morning"}
    with stack.client() as api:
        session_id = api.post("/api/sessions/create").json()["session_id"]
        stack.stop("redis", signal.SIGKILL)
        try:
            # Rate-limit counters and the task queue live in Redis: without it, a 503 in our error shape.
            response = api.post("/api/chat", json={**chat, "session_id": session_id})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] in ("unavailable", "queue_unavailable"), response.text
            assert response.headers.get("Retry-After")
        finally:
            stack.start_redis()
        response = wait_until(lambda: (r := api.post("/api/chat", json={**chat, "session_id": session_id}))
                              .status_code == 200 and r, timeout=20, what="chat to answer after Redis came back")
        assert response.json()["session_id"] == session_id
        assert response.json()["session_status"] != "error", response.json()
        # ... and the worker reconnected: a new agent is created and validated.
        created = api.post("/api/agents/create", json=_slow_agent_body(0, "after-redis"))
        assert created.status_code in (201, 202), created.text
        agent_id = created.json()["agent_id"]
        agent = wait_until(lambda: (a := _agent(api, agent_id))["status"] in ("ready", "failed") and a,
                           timeout=45, what="an agent created after the Redis restart")
        assert agent["status"] == "ready", agent


def test_database_restart_requests_recover_without_restarting_web(stack):
    with stack.client() as api:
        before = api.post("/api/sessions/create")
        assert before.status_code == 201, before.text
        stack.db("stop")
        down = api.get(f"/api/sessions/{before.json()['session_id']}")
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "unavailable"
        stack.db("start")
        # The same gunicorn workers: their pooled connections are checked and replaced, not reused broken.
        after = wait_until(lambda: (r := api.get(f"/api/sessions/{before.json()['session_id']}")).status_code == 200
                           and r, timeout=20, what="the API to answer again after the database restart")
        assert after.json()["session_id"] == before.json()["session_id"]
        assert api.post("/api/sessions/create").status_code == 201
        assert stack.procs["web"].poll() is None


def test_web_and_worker_restart_keeps_every_session_agent_schedule_and_run(stack):
    with stack.client() as api:
        session_id = api.post("/api/sessions/create").json()["session_id"]
        agent_id = api.post("/api/agents/create", json=_slow_agent_body(0, "survivor")).json()["agent_id"]
        wait_until(lambda: _agent(api, agent_id)["status"] == "ready", timeout=45, what="the agent to be ready")
        assert api.put(f"/api/agents/{agent_id}/schedule", json={"interval_seconds": 3600}).status_code == 201
        run = api.post(f"/api/agents/{agent_id}/messages", json={"message": "hello", "model": "passthrough"})
        assert run.status_code in (200, 202), run.text
        run_id = run.json()["run_id"]
        wait_until(lambda: api.get(f"/api/agents/{agent_id}/runs/{run_id}").json()["status"] == "succeeded",
                   timeout=30, what="the run to finish")

    stack.stop("web")
    stack.stop("worker")
    stack.start_web(wait=False)  # both start at once, as a deploy would
    stack.start_worker(wait=False)
    stack.wait_web()
    stack.wait_worker()

    with stack.client() as api:
        assert api.get(f"/api/sessions/{session_id}").status_code == 200
        assert _agent(api, agent_id)["status"] == "ready"
        assert api.get(f"/api/agents/{agent_id}/schedule").json()["interval_seconds"] == 3600
        assert api.get(f"/api/agents/{agent_id}/runs/{run_id}").json()["status"] == "succeeded"
        # and the restarted worker works
        again = api.post(f"/api/agents/{agent_id}/messages", json={"message": "again", "model": "passthrough"})
        run_id = again.json()["run_id"]
        wait_until(lambda: api.get(f"/api/agents/{agent_id}/runs/{run_id}").json()["status"] == "succeeded",
                   timeout=30, what="a run after the restart")
