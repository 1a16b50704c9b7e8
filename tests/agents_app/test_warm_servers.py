"""Warm servers in a real Celery worker (one prefork process, Redis, real sandbox): a ready agent's servers
(mcp-server-time, mcp-server-git) keep running between its messages, are started again when one died, stop when
idle, when the agent is deleted and when the worker shuts down, and are never shared between agents."""

import contextlib
import os
import signal

import psutil
import pytest

from agents_app.models import AgentRun
from tests.agents_app.conftest import TIME_SERVER, leftover_server_processes
from tests.agents_app.test_worker import wait_until, worker_pids
from tests.conftest import celery_worker_process

pytestmark = pytest.mark.worker

IDLE_SECONDS = 15  # long enough for a cold restart on a loaded machine between two messages
TIME_CALL = '***CALL_TOOL get_current_time {"timezone": "UTC"}'


@pytest.fixture
def warm_worker(request, transactional_db, redis_url, settings, git_repo):
    """One worker process that keeps servers warm: idle after IDLE_SECONDS (or the test's parameter), its agents
    checked every 0.3 s."""
    settings.AGENT_WARM_SERVERS = True
    idle = getattr(request, "param", IDLE_SECONDS)
    yield from celery_worker_process(settings, redis_url, concurrency=1, extra_env={
        "AGENT_WARM_SERVERS": "1", "AGENT_WARM_IDLE_SECONDS": str(idle), "AGENT_WARM_CHECK_SECONDS": "0.3",
        "AGENT_ALLOWED_PATH_DIRS": str(git_repo.parent)})


def server_processes(worker) -> dict[int, str]:
    """{pid: "time" or "git"} of the MCP server processes (sandbox launchers included) the worker runs."""
    found = {}
    for proc in leftover_server_processes(worker_pids(worker)):
        try:
            found[proc.pid] = "time" if "mcp_server_time" in " ".join(proc.cmdline()) else "git"
        except psutil.NoSuchProcess:
            continue
    return found


def create_agent(api, servers: dict) -> str:
    body = {"mcp_config": {"mcpServers": servers}, "user_prompt": "Time and repository status",
            "workflow": "Get the time", "model": "passthrough"}
    response = api.post("/api/agents/create", body, format="json")
    assert response.status_code in (201, 202), response.content
    agent_id = response.json()["agent_id"]
    detail = wait_until(lambda: api.get(f"/api/agents/{agent_id}").json(), lambda d: d["status"] in ("ready", "failed"))
    assert detail["status"] == "ready", detail["error"]
    return agent_id


def send(api, agent_id: str, message: str = TIME_CALL) -> AgentRun:
    response = api.post(f"/api/agents/{agent_id}/messages", {"message": message}, format="json")
    assert response.status_code == 200, response.content
    return AgentRun.objects.get(pk=response.json()["run_id"])


def test_servers_stay_warm_restart_when_killed_and_stop_when_idle(warm_worker, api, git_repo):
    git = {"command": "python", "args": ["-m", "mcp_server_git", "--repository", str(git_repo)]}
    agent_id = create_agent(api, {"time": TIME_SERVER, "git": git})

    first = send(api, agent_id)
    assert '"timezone":"UTC"' in first.reply and first.metadata["warm_servers"] is False
    started = server_processes(warm_worker)
    assert set(started.values()) == {"time", "git"}

    # The second message finds the same server processes running, and the git server answers on them too.
    second = send(api, agent_id, f'***CALL_TOOL git_status {{"repo_path": "{git_repo}"}}')
    assert second.status == "succeeded" and "branch" in second.reply.lower(), second.reply
    assert second.metadata["warm_servers"] is True
    assert server_processes(warm_worker) == started

    # A killed server is started again by the next message (with its agent's other servers).
    for pid, name in started.items():
        if name == "time":
            with contextlib.suppress(ProcessLookupError):  # gone with its sandbox's launcher
                os.kill(pid, signal.SIGKILL)
    third = send(api, agent_id)
    assert third.status == "succeeded" and '"timezone":"UTC"' in third.reply
    assert third.metadata["warm_servers"] is False
    restarted = server_processes(warm_worker)
    assert set(restarted.values()) == {"time", "git"} and not set(restarted) & set(started)
    assert send(api, agent_id).metadata["warm_servers"] is True
    assert server_processes(warm_worker) == restarted

    # Unused for AGENT_WARM_IDLE_SECONDS: stopped, nothing left.
    assert wait_until(lambda: server_processes(warm_worker), lambda found: not found, seconds=IDLE_SECONDS + 15) == {}


# Idle only after 120 s: one agent's servers must outlast the other's cold start on a loaded machine, and their
# deletion must visibly be what stops them.
@pytest.mark.parametrize("warm_worker", [120], indirect=True)
def test_agents_never_share_servers_and_deletion_or_shutdown_stops_them(warm_worker, api, other_api):
    mine = create_agent(api, {"time": TIME_SERVER})
    theirs = create_agent(other_api, {"time": TIME_SERVER})  # the same configuration, another client

    send(api, mine)
    my_servers = set(server_processes(warm_worker))
    assert send(other_api, theirs).metadata["warm_servers"] is False
    their_servers = set(server_processes(warm_worker)) - my_servers
    assert my_servers and their_servers and not my_servers & their_servers
    assert send(other_api, theirs).metadata["warm_servers"] is True
    assert send(api, mine).metadata["warm_servers"] is True
    assert set(server_processes(warm_worker)) == my_servers | their_servers

    # Deleted (by the API process): the worker stops that agent's servers well before they would go idle.
    assert api.delete(f"/api/agents/{mine}").status_code == 204
    left = wait_until(lambda: set(server_processes(warm_worker)), lambda found: not found & my_servers,
                      seconds=15)
    assert not left & my_servers and left == their_servers

    # The worker shuts down: every server it kept warm stops with it.
    os.killpg(warm_worker.pid, signal.SIGTERM)
    warm_worker.wait(timeout=30)
    assert wait_until(lambda: {pid for pid in their_servers if alive(pid)}, lambda found: not found, seconds=5) == set()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
