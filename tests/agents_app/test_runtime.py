"""Validation of real MCP servers with the mcp SDK: real tools listed, every failure explained, and no
process left behind (the autouse guard in conftest checks the process table after each test)."""

import psutil
import pytest

from agents_app import runtime
from agents_app.mcp_config import LaunchSpec
from tests.agents_app.conftest import SERVERS
from tests.agents_app.servers.remote import TOKEN, RemoteServer


def stdio(name: str, args: list[str], command: str = "python", env: dict | None = None) -> LaunchSpec:
    return LaunchSpec(name=name, label=name, transport="stdio", command=command, args=args, env=env or {})


def test_real_servers_list_their_real_tools(git_repo):
    results = runtime.validate_servers([
        stdio("time", ["-m", "mcp_server_time"]),
        stdio("git", ["-m", "mcp_server_git", "--repository", str(git_repo)]),
    ], timeout=20)
    assert results["time"].ok and results["git"].ok, (results["time"].error, results["git"].error)
    assert {t["name"] for t in results["time"].tools} == {"get_current_time", "convert_time"}
    assert {"git_status", "git_log", "git_diff"} <= {t["name"] for t in results["git"].tools}
    assert results["time"].server_info["name"] == "mcp-time"
    assert all(t["description"] for t in results["time"].tools)


def test_missing_command_says_what_to_install(settings):
    settings.AGENT_ALLOWED_COMMANDS = [*settings.AGENT_ALLOWED_COMMANDS, "mcp-server-not-installed-xyz"]
    result = runtime.validate_servers([stdio("ghost", [], command="mcp-server-not-installed-xyz")], timeout=5)["ghost"]
    assert not result.ok
    assert result.error["code"] == "command_not_found"
    assert "mcp-server-not-installed-xyz" in result.error["message"] and "not installed" in result.error["message"]
    assert result.error["hint"].startswith("Install")
    assert result.seconds < 1


def test_server_crashing_at_start_reports_its_stderr(test_servers):
    results = runtime.validate_servers([
        stdio("nomodule", ["-m", "nonexistent_module_xyz"]),
        stdio("crash", [str(SERVERS / "crashing.py")]),
    ], timeout=10)
    assert results["nomodule"].error["code"] == "package_missing"
    assert "nonexistent_module_xyz" in results["nomodule"].error["message"]
    crash = results["crash"].error
    assert crash["code"] == "server_exited"
    assert "boom: configuration file is corrupt" in crash["message"]
    assert crash["server"] == "crash" and crash["hint"]


def test_hanging_server_times_out_and_its_children_die(test_servers):
    result = runtime.validate_servers([stdio("hang", [str(SERVERS / "hanging.py")])], timeout=2)["hang"]
    assert result.error["code"] == "server_timeout"
    assert "did not answer initialize within 2 s" in result.error["message"]
    assert "AGENT_VALIDATION_TIMEOUT_SECONDS" in result.error["hint"]
    assert result.seconds < 4  # no 2 s + 2 s SDK grace period on top of the timeout
    # hanging.py started a child of its own: it must be gone too (checked again by the autouse guard).
    hanging = str(SERVERS / "hanging.py")
    assert not [p for p in psutil.process_iter(["cmdline"]) if hanging in " ".join(p.info["cmdline"] or [])]


def test_detached_grandchild_of_a_server_is_killed(test_servers):
    result = runtime.validate_servers([stdio("leaky", [str(SERVERS / "leaky.py")])], timeout=20)["leaky"]
    assert result.ok and [t["name"] for t in result.tools] == ["ping"]
    assert not runtime.tagged_processes(runtime.process_tag_prefix())


def test_bad_credentials_are_named_and_never_echoed(test_servers):
    wrong = "wrong-token-value-987"
    results = runtime.validate_servers([
        stdio("github", [str(SERVERS / "auth_server.py")], env={"TOKEN": wrong}),
        stdio("good", [str(SERVERS / "auth_server.py")], env={"TOKEN": "good-token-123"}),
    ], timeout=20)
    error = results["github"].error
    assert error["code"] == "credentials_rejected"
    assert error["message"].startswith("GitHub rejected the credentials")
    assert "invalid token" in error["message"]
    assert "TOKEN" in error["hint"] and "scopes" in error["hint"]
    assert wrong not in str(results["github"].as_dict())
    assert results["good"].ok and results["good"].tools[0]["name"] == "whoami"


def test_secret_values_are_redacted_from_server_output(test_servers):
    secret = "s3cr3t-value-that-leaks"
    spec = stdio("echoer", [str(SERVERS / "echo_secret.py")], env={"API_KEY": secret})
    error = runtime.validate_servers([spec], timeout=10)["echoer"].error
    assert "could not start with API_KEY=***" in error["message"]
    assert secret not in str(error)


@pytest.fixture
def remote(settings):
    settings.AGENT_ALLOW_HTTP_LOOPBACK = True
    with RemoteServer() as server:
        yield server


def test_remote_server_with_headers(remote):
    def spec(name: str, url: str, token: str | None) -> LaunchSpec:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return LaunchSpec(name=name, label=name, transport="http", url=url, headers=headers)

    results = runtime.validate_servers([
        spec("ok", remote.url, TOKEN),
        spec("badtoken", remote.url, "not-the-token"),
        spec("wrongpath", remote.url.replace("/mcp", "/nothing"), TOKEN),
    ], timeout=10)
    assert results["ok"].ok and [t["name"] for t in results["ok"].tools] == ["add"]
    assert results["badtoken"].error["code"] == "credentials_rejected"
    assert "HTTP 401" in results["badtoken"].error["message"] and "Authorization" in results["badtoken"].error["hint"]
    assert results["wrongpath"].error["code"] == "not_an_mcp_endpoint"


def test_unreachable_remote_server(settings):
    settings.AGENT_ALLOW_HTTP_LOOPBACK = True
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    spec = LaunchSpec(name="down", label="down", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    error = runtime.validate_servers([spec], timeout=5)["down"].error
    assert error["code"] == "unreachable"


def test_remote_host_resolving_to_internal_address_is_refused(settings):
    settings.AGENT_ALLOW_HTTP_LOOPBACK = False
    settings.DEBUG = False
    spec = LaunchSpec(name="sneaky", label="sneaky", transport="http", url="https://localhost:9/mcp")
    error = runtime.validate_servers([spec], timeout=5)["sneaky"].error
    assert error["code"] == "address_not_allowed"


def test_runs_recheck_remote_addresses(remote, settings):
    spec = LaunchSpec(name="remote", label="remote", transport="http", url=remote.url,
                      headers={"Authorization": f"Bearer {TOKEN}"})
    ok = runtime.run_agent(specs=[spec], instruction="", model="passthrough",
                           message='***CALL_TOOL add {"a": 2, "b": 3}')
    assert ok.ok and ok.turns[1]["message"] == "5"
    settings.AGENT_ALLOW_HTTP_LOOPBACK = False  # e.g. the host now resolves to an internal address
    refused = runtime.run_agent(specs=[spec], instruction="", model="passthrough", message="hi")
    assert not refused.ok and refused.error["code"] == "address_not_allowed"


def test_a_tool_call_that_never_returns_is_timed_out(test_servers):
    spec = stdio("slow", [str(SERVERS / "slow_tool.py")])
    outcome = runtime.run_agent(specs=[spec], instruction="", model="passthrough",
                                message="***CALL_TOOL wait_forever {}", tool_timeout=2)
    result = next(t for t in outcome.turns if t["metadata"].get("kind") == "tool_result")
    assert result["metadata"]["is_error"] is True and "timed out" in result["message"]
    assert outcome.ok and "timed out" in outcome.reply  # the model sees the failure and the run finishes
    assert outcome.seconds < 30


def test_a_whole_run_is_bounded_even_without_a_worker_time_limit(test_servers):
    spec = stdio("slow", [str(SERVERS / "slow_tool.py")])
    outcome = runtime.run_agent(specs=[spec], instruction="", model="passthrough",
                                message="***CALL_TOOL wait_forever {}", tool_timeout=120, run_timeout=3)
    assert not outcome.ok and outcome.error["code"] == "run_timeout", outcome.error
    assert "3 s" in outcome.error["message"]
    assert outcome.seconds < 20
    slow = str(SERVERS / "slow_tool.py")  # the server is gone (the autouse guard checks every tagged process too)
    assert not [p for p in psutil.process_iter(["cmdline"]) if slow in " ".join(p.info["cmdline"] or [])]
