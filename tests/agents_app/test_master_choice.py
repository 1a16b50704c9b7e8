"""How the offline analyzer chooses among servers that all serve a named service: one that can be launched here,
with credentials the user can get by themselves, beats a better-known one that cannot (a Docker image with no
Docker daemon answering, a hosted endpoint reachable only after an OAuth sign-in). Real PostgreSQL, real search
over a small catalogue; the Docker engine is a fake one on a unix socket (an external API), found through
DOCKER_HOST like the docker CLI finds it."""

import os
import shutil
import socketserver
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from agents_app.master.launchability import docker_available, launcher_available, needs_sign_in
from agents_app.master.offline import OfflineAnalyzer
from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer, ServerTool

SIGN_IN_BY_DOCKER = "Asana OAuth access token. Docker's catalog obtains it by OAuth sign-in with asana."
SIGN_IN_HOSTED = "OAuth 2.0 access token for the hosted server (it signs users in with OAuth); scopes: mcp:tools"


# --- a fake Docker engine and launchers --------------------------------------------------------------------------

class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextmanager
def _engine(path: str, reply: bytes | None):
    """A Docker engine on a unix socket answering GET /_ping with `reply` (None: accept, then never answer),
    serving while in the with block."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(1024)
            if reply is None:
                time.sleep(3)
                return
            self.request.sendall(reply)

    server = _Engine(path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def docker_host(monkeypatch, settings):
    """Point DOCKER_HOST at a socket path of our own (nothing listens yet); the cached answer is dropped before
    and after, so other tests see this machine's real Docker state. Docker images are an option only where
    servers are not in the bubblewrap sandbox (it has no engine inside)."""
    settings.SANDBOX, settings.ALLOW_UNSANDBOXED_SERVERS = "none", True
    folder = tempfile.mkdtemp(prefix="dk", dir="/tmp")  # a unix socket path must stay under 108 bytes
    path = os.path.join(folder, "docker.sock")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    docker_available.cache_clear()
    yield path
    docker_available.cache_clear()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def launchers(monkeypatch, tmp_path):
    """`docker` and `npx` executables on PATH (whether or not this machine has them): what they would run is never
    started here, only their presence is checked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "npx"):
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\nexit 1\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


# --- Docker detection ----------------------------------------------------------------------------------------------

def test_no_docker_daemon_when_nothing_listens(docker_host, launchers):
    assert not Path(docker_host).exists()
    assert docker_available() is False
    assert launcher_available("oci") is False


def test_a_docker_engine_that_answers_its_ping_is_found(docker_host, launchers):
    with _engine(docker_host, b"HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nContent-Length: 2\r\n\r\nOK"):
        assert docker_available() is True
        assert launcher_available("oci") is True
    # Checked once per process: the answer stays until the cache is cleared.
    assert docker_available() is True
    docker_available.cache_clear()
    assert docker_available() is False


def test_in_the_sandbox_an_engine_that_answers_is_no_reason_to_pick_docker(docker_host, launchers, settings):
    settings.SANDBOX = "bwrap"
    with _engine(docker_host, b"HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nContent-Length: 2\r\n\r\nOK"):
        assert docker_available() is False
        assert launcher_available("oci") is False


def test_an_engine_that_fails_or_hangs_is_not_docker_and_the_check_is_quick(docker_host, launchers):
    with _engine(docker_host, b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"):
        assert docker_available() is False
    os.unlink(docker_host)
    docker_available.cache_clear()
    with _engine(docker_host, None):
        started = time.monotonic()
        assert docker_available() is False
        assert time.monotonic() - started < 2.0


def test_docker_not_allowed_means_no_docker_even_with_an_engine(docker_host, launchers, settings):
    settings.AGENT_ALLOWED_COMMANDS = ["npx", "uvx"]
    with _engine(docker_host, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"):
        assert docker_available() is False


def test_a_package_launcher_must_be_allowed_and_installed(launchers, settings):
    assert launcher_available("npm") is True
    settings.AGENT_ALLOWED_COMMANDS = ["uvx"]
    assert launcher_available("npm") is False
    assert launcher_available("remote") is False


# --- credentials only a sign-in yields -----------------------------------------------------------------------------

@pytest.mark.parametrize("description, expected", [
    (SIGN_IN_BY_DOCKER, True),
    (SIGN_IN_HOSTED, True),
    ("Bot User OAuth token of a Slack app installed in your workspace.", False),
    ("Your Notion API token. ntn_****", False),
    ("OAuth client ID of a Google Cloud project.", False),
    ("", False),
])
def test_needs_sign_in(description, expected):
    assert needs_sign_in(description=description) is expected


# --- the choice -----------------------------------------------------------------------------------------------------

def _server(slug, name, *, recipes, credentials=(), official=False, popularity=0.2, tools=("list_items",)):
    server = McpServer.objects.create(slug=slug, name=name, description=f"{name}: work with {name.split()[0]}.",
                                      official=official, popularity=popularity)
    for tool in tools:
        ServerTool.objects.create(server=server, name=tool, description=tool.replace("_", " "))
    for key, location, description, *required in credentials:
        CredentialRequirement.objects.create(server=server, key=key, location=location, kind="token",
                                             required=required[0] if required else True, secret=True,
                                             description=description)
    for recipe in recipes:
        LaunchRecipe.objects.create(server=server, **recipe)
    return server


def _npm(package):
    return {"kind": "npm", "identifier": package, "command": "npx", "args": ["-y", package]}


@pytest.fixture
def small_catalogue(db):
    """These servers only: the bundled catalogue, if an earlier test loaded it, is hidden for this test (rolled
    back with it), so the outcome does not depend on which tests ran before."""
    from registry_app.embeddings import get_provider
    from registry_app.search_index import refresh_search_fields, server_embeddings_refresh

    McpServer.objects.filter(status=McpServer.Status.ACTIVE).update(status=McpServer.Status.HIDDEN)
    servers = [
        # Trello: the better-known server is a Docker image only.
        _server("trello-docker", "Trello MCP", official=True, popularity=0.9,
                tools=("get_boards", "add_card", "list_cards", "move_card"),
                credentials=[("TRELLO_API_KEY", "env", "API key from trello.com/power-ups/admin.")],
                recipes=[{"kind": "oci", "identifier": "example/trello", "command": "docker",
                          "args": ["run", "-i", "--rm", "-e", "TRELLO_API_KEY", "example/trello"]}]),
        _server("trello-package", "Trello Cards", tools=("add_card",),
                credentials=[("TRELLO_API_KEY", "env", "API key from trello.com/power-ups/admin.")],
                recipes=[_npm("trello-cards-mcp")]),
        # Asana: two hosted endpoints that only an OAuth sign-in opens, and a package taking a personal token.
        _server("asana-remote", "Asana", official=True, popularity=0.9,
                tools=("create_task", "list_tasks", "get_project", "search_tasks"),
                credentials=[("ASANA_REMOTE_TOKEN", "env", SIGN_IN_BY_DOCKER)],
                recipes=[{"kind": "remote", "url": "https://mcp.asana.example/sse", "transport": "sse"}]),
        # (a hosting platform's shape: its own optional API key, and the service's token from a sign-in)
        _server("asana-hosted", "Asana Hosted", popularity=0.6, tools=("create_task", "list_tasks"),
                credentials=[("Authorization", "header", SIGN_IN_HOSTED),
                             ("platform_api_key", "header", "Bearer token for the hosting platform.", False)],
                recipes=[{"kind": "remote", "url": "https://asana.hosted.example/mcp",
                          "transport": "streamable-http", "headers": {"Authorization": "Bearer ${platform_api_key}"}}]),
        _server("asana-package", "Asana Tasks", tools=("create_task",),
                credentials=[("ASANA_ACCESS_TOKEN", "env", "Personal access token from Asana's developer console.")],
                recipes=[_npm("asana-tasks-mcp")]),
        # Linear: a hosted endpoint that takes an API key in a header is as good as a package.
        _server("linear-remote", "Linear", official=True, popularity=0.9,
                tools=("create_issue", "list_issues", "update_issue", "search_issues"),
                credentials=[("LINEAR_API_KEY", "header", "Personal API key from Linear > Settings > API.")],
                recipes=[{"kind": "remote", "url": "https://mcp.linear.example/mcp", "transport": "streamable-http",
                          "headers": {"Authorization": "Bearer ${LINEAR_API_KEY}"}}]),
        _server("linear-package", "Linear Issues", tools=("create_issue",),
                credentials=[("LINEAR_API_KEY", "env", "Personal API key from Linear > Settings > API.")],
                recipes=[_npm("linear-issues-mcp")]),
        # Todoist: nothing that runs here.
        _server("todoist-docker", "Todoist", tools=("add_task",),
                credentials=[("TODOIST_API_TOKEN", "env", "API token from Todoist > Settings > Integrations.")],
                recipes=[{"kind": "oci", "identifier": "example/todoist", "command": "docker",
                          "args": ["run", "-i", "--rm", "example/todoist"]}]),
    ]
    # For the workflow's tool choice: a mail server and a pages server with tools named like real ones.
    mail = _server("gmail-package", "Gmail Package", tools=(),
                   credentials=[("GMAIL_TOKEN", "env", "Token.")], recipes=[_npm("gmail-package-mcp")])
    for name, description in [
        ("get_profile", "Get the current user's Gmail profile"),
        ("list_filters", "Lists the message filters of a Gmail user"),
        ("get_message", "Get a specific message by ID with format options"),
        ("list_messages", "List messages in the user's mailbox with optional filtering"),
        ("create_draft", "Create a draft email in Gmail"),
        ("send_message", "Send an email message to specified recipients"),
    ]:
        ServerTool.objects.create(server=mail, name=name, description=description)
    pages = _server("notion-package", "Notion Package", tools=(),
                    credentials=[("NOTION_TOKEN", "env", "Token.")], recipes=[_npm("notion-package-mcp")])
    for name, description in [("API-patch-page", "Update page properties"), ("API-post-page", "Create a page"),
                              ("API-post-search", "Search by title")]:
        ServerTool.objects.create(server=pages, name=name, description=description)
    servers += [mail, pages]
    server_embeddings_refresh(provider=get_provider(), server_ids=[s.id for s in servers])
    yield {s.slug: s for s in servers}
    # In-process search caches built meanwhile saw the catalogue hidden: a refresh marks them stale.
    refresh_search_fields(server_ids=[servers[0].id])


def _chosen(request: str) -> dict[str, object]:
    return {s.need: s for s in OfflineAnalyzer().analyze(request).servers}


def test_without_docker_a_package_beats_a_better_known_docker_image(small_catalogue, docker_host, launchers):
    chosen = _chosen("Add a card to Trello for every new task")["trello"]
    assert chosen.slug == "trello-package"
    assert "runnable launch recipe" in chosen.reason


def test_with_a_docker_engine_the_better_known_docker_image_wins(small_catalogue, docker_host, launchers):
    with _engine(docker_host, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"):
        chosen = _chosen("Add a card to Trello for every new task")["trello"]
    assert chosen.slug == "trello-docker"
    assert "official" in chosen.reason and "runnable launch recipe" in chosen.reason


def test_a_hosted_endpoint_behind_an_oauth_sign_in_ranks_below_a_package_with_a_token(small_catalogue, docker_host,
                                                                                    launchers):
    chosen = _chosen("Create an Asana task for each new lead")["asana"]
    assert chosen.slug == "asana-package"
    assert "runnable launch recipe" in chosen.reason


def test_a_hosted_endpoint_taking_an_api_key_header_stays_preferred(small_catalogue, docker_host, launchers):
    chosen = _chosen("Open a Linear issue for each bug report")["linear"]
    assert chosen.slug == "linear-remote"
    assert "runnable launch recipe" in chosen.reason


def test_when_nothing_runs_here_the_choice_says_why(small_catalogue, docker_host, launchers):
    chosen = _chosen("Add a task to Todoist")["todoist"]
    assert chosen.slug == "todoist-docker"
    assert "runnable launch recipe" not in chosen.reason
    assert "needs a Docker daemon" in chosen.reason


def test_the_catalogue_tool_of_the_model_says_what_runs_here(small_catalogue, docker_host, launchers):
    from agents_app.master.catalogue_mcp import search_servers

    results = {r["slug"]: r for r in search_servers("asana tasks", limit=8)["results"]}
    assert results["asana-package"]["runnable_here"] is True
    assert "not_runnable_because" not in results["asana-package"]
    assert results["asana-remote"]["runnable_here"] is False
    assert "OAuth sign-in" in results["asana-remote"]["not_runnable_because"]


@pytest.mark.parametrize("request_text, expected", [
    ("Monitor my Gmail for specific emails, store them in Notion", ["list_messages", "API-post-page"]),
    ("Monitor my Gmail for invoices and store them in Notion", ["list_messages", "API-post-page"]),
    ("Search Notion for the weekly report and email the digest through Gmail", ["API-post-search", "send_message"]),
])
def test_workflow_steps_name_the_tool_that_fits(small_catalogue, request_text, expected):
    plan = OfflineAnalyzer().analyze(request_text)
    assert {s.slug for s in plan.servers} == {"gmail-package", "notion-package"}, plan.servers
    assert [step.tool for step in plan.workflow if step.server] == expected, plan.workflow
