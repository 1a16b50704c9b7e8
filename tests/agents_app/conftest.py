"""Fixtures for the agent tests: real MCP servers (mcp-server-time, mcp-server-git, tiny test servers in
./servers), and a guard that fails any test leaving a server process behind."""

import os
import time
from pathlib import Path

import psutil
import pytest

from agents_app import runtime

SERVERS = Path(__file__).resolve().parent / "servers"


def assert_credential_missing(agent, key: str) -> None:
    """Validation fails naming `key`, and starting the agent's servers is a 409 credential_missing."""
    from agents_app.models import Agent
    from agents_app.services import agent_launch, agent_validate
    from mcpagent.errors import ApplicationError

    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.FAILED
    assert agent.error["code"] == "credential_missing" and key in agent.error["message"]
    with pytest.raises(ApplicationError) as caught:
        with agent_launch(agent, reason="agent_run"):
            pass
    assert (caught.value.status, caught.value.code) == (409, "credential_missing")


TIME_SERVER = {"command": "python", "args": ["-m", "mcp_server_time"]}


def script(name: str) -> dict:
    return {"command": "python", "args": [str(SERVERS / f"{name}.py")]}


def leftover_server_processes(pids: list[int] | None = None) -> list[psutil.Process]:
    """Live MCP server processes started by this process (or by the given pids, e.g. worker children)."""
    found = []
    for pid in pids or [os.getpid()]:
        found.extend(runtime.tagged_processes(runtime.process_tag_prefix(pid)))
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Every agent test must leave no server process (nor a child of one) behind."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 5
    while True:
        tagged = leftover_server_processes()
        new_children = [p for p in me.children(recursive=True) if p.pid not in before and p.is_running()
                        and p.status() != psutil.STATUS_ZOMBIE]
        if not tagged and not new_children or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not tagged, f"server processes left behind: {[p.cmdline() for p in tagged]}"
    assert not new_children, f"child processes left behind: {[p.cmdline() for p in new_children]}"


@pytest.fixture
def test_servers(settings):
    """Allow `python <script>` for the tiny test servers in tests/agents_app/servers."""
    settings.AGENT_ALLOWED_SCRIPT_DIRS = [str(SERVERS)]
    return SERVERS


@pytest.fixture
def git_server(git_repo) -> dict:
    return {"command": "python", "args": ["-m", "mcp_server_git", "--repository", str(git_repo)]}
