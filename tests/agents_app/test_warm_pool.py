"""The warm pool in this process (real servers, real sandbox): its caps per API client and per process, servers
started again when their credentials change, and a warm run that times out leaves nothing running. The worker's
side (reuse, restart of a killed server, idle stop, deletion) is in test_warm_servers.py."""

import pytest

from agents_app import runtime
from tests.agents_app.conftest import SERVERS
from tests.agents_app.test_runtime import stdio

TIME_CALL = '***CALL_TOOL get_current_time {"timezone": "UTC"}'


@pytest.fixture
def warm(settings):
    """Warm servers on, the agents' database check off (these agents exist only as keys); all stopped after."""
    settings.AGENT_WARM_SERVERS = True
    settings.AGENT_WARM_CHECK_SECONDS = 3600
    yield
    runtime.warm_servers_shutdown()


def server_pids() -> set[int]:
    return {p.pid for p in runtime.tagged_processes(runtime.process_tag_prefix())}


def run(agent: str, client: str, env: dict | None = None, **options) -> runtime.RunOutcome:
    spec = stdio("time", ["-m", "mcp_server_time"], env=env)
    outcome = runtime.run_agent(specs=[spec], instruction="", model="passthrough", message=TIME_CALL,
                                warm=runtime.WarmKey(agent=agent, client=client), **options)
    assert outcome.ok, outcome.error
    return outcome


def test_caps_per_client_and_per_process_and_changed_credentials(warm, settings):
    settings.AGENT_WARM_MAX_SERVERS_PER_CLIENT = 1
    settings.AGENT_WARM_MAX_SERVERS_PER_WORKER = 2
    assert not run("a1", "c1", env={"TOKEN": "one"}).warm
    first = server_pids()
    assert run("a1", "c1", env={"TOKEN": "one"}).warm and server_pids() == first

    # Another credential value: the servers started with the old one stop, new ones start.
    assert not run("a1", "c1", env={"TOKEN": "two"}).warm
    second = server_pids()
    assert second and not second & first

    # The client's cap is one server: its other agent takes the place of the first one.
    assert not run("a2", "c1").warm
    third = server_pids()
    assert third and not third & second

    # The process's cap is two: a third client's agent stops the least recently used one (c1's a2).
    assert not run("a3", "c2").warm
    assert run("a2", "c1").warm  # a2 used again: now a3 is the least recently used
    assert not run("a4", "c3").warm
    assert run("a2", "c1").warm and third <= server_pids()
    assert not run("a3", "c2").warm


def test_a_warm_run_that_times_out_stops_its_servers(warm, test_servers):
    spec = stdio("slow", [str(SERVERS / "slow_tool.py")])
    key = runtime.WarmKey(agent="slow-agent", client="c1")
    outcome = runtime.run_agent(specs=[spec], instruction="", model="passthrough",
                                message="***CALL_TOOL wait_forever {}", tool_timeout=120, run_timeout=8, warm=key)
    assert not outcome.ok and outcome.error["code"] == "run_timeout", outcome.error
    # The next run finds no warm servers (the timed-out ones are not reused) and starts them again.
    again = runtime.run_agent(specs=[spec], instruction="", model="passthrough", message="hi", warm=key)
    assert again.ok and not again.warm


def test_the_playback_model_replays_its_script_at_every_run_on_servers_of_its_own(warm):
    playback = [
        {"role": "user", "text": "What time is it?"},
        {"role": "assistant", "text": "Let me look.",
         "tool_calls": [{"name": "time__get_current_time", "arguments": {"timezone": "UTC"}}]},
        {"role": "assistant", "text": "It is time for tea."},
    ]
    assert not run("other-agent", "c1").warm  # a warm app alive in this process meanwhile
    spec = stdio("time", ["-m", "mcp_server_time"])
    key = runtime.WarmKey(agent="playback-agent", client="c1")
    for _ in range(2):  # its script position lives in the fast-agent app: every run gets a new one
        outcome = runtime.run_agent(specs=[spec], instruction="", model="playback", message="What time is it?",
                                    playback=playback, warm=key)
        assert outcome.ok and outcome.reply == "It is time for tea." and not outcome.warm
        calls = [t for t in outcome.turns if t["metadata"].get("kind") == "tool_call"]
        assert [c["metadata"]["tool"] for c in calls] == ["get_current_time"]  # this run's calls only
    # Cold apps started and closed beside it leave the warm one working.
    assert run("other-agent", "c1").warm


def test_a_server_that_cannot_start_fails_the_warm_run_at_once(warm):
    spec = stdio("ghost", [], command="mcp-server-not-installed-xyz")
    outcome = runtime.run_agent(specs=[spec], instruction="", model="passthrough", message="hi",
                                warm=runtime.WarmKey(agent="ghost-agent", client="c1"))
    assert not outcome.ok and outcome.error["code"] == "command_not_found", outcome.error
    assert outcome.seconds < 10
