"""Every MCP server runs in a sandbox: a hostile server, created by a second API client through the normal agent
path, tries to take the first client's secrets and the host's, and fails at each attempt but reaching the
public internet (a host in a network namespace made here)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psutil
import pytest
from django.conf import settings as django_settings

from agents_app import runtime, sandbox
from agents_app.mcp_config import LaunchSpec
from agents_app.sandbox import prefetch
from agents_app.models import Agent
from agents_app.services import agent_launch
from sessions_app.credentials import file_materialize, files_store
from tests.agents_app.conftest import TIME_SERVER, script
from tests.agents_app.test_apis import create
from tests.sessions_app.secretscan import assert_no_plaintext_in_db

INTERNET_HOST = "11.22.33.2"  # a public address, given to a host in a network namespace of this test
INTERNET_PORT = 8099


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def public_internet_host():
    """A web server on a host that stands for the public internet: its own network namespace, reached over a
    veth pair, at a public address. Needs root (CI and developers run as root here)."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("making a network namespace needs root and iproute2")
    name = f"mcpinet{uuid.uuid4().hex[:6]}"
    host_end, ns_end = f"{name}h", f"{name}n"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        _ip("link", "set", ns_end, "netns", name)
        _ip("addr", "add", "11.22.33.1/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("-n", name, "addr", "add", f"{INTERNET_HOST}/30", "dev", ns_end)
        _ip("-n", name, "link", "set", ns_end, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        page = "hello from the public internet"
        server = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-c",
             "import http.server, sys\n"
             "class H(http.server.BaseHTTPRequestHandler):\n"
             "    def do_GET(self):\n"
             f"        body = {page!r}.encode()\n"
             "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
             "        self.wfile.write(body)\n"
             "    def log_message(self, *a): pass\n"
             f"http.server.HTTPServer(({INTERNET_HOST!r}, {INTERNET_PORT}), H).serve_forever()\n"])
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection((INTERNET_HOST, INTERNET_PORT), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield f"http://{INTERNET_HOST}:{INTERNET_PORT}/", page
        finally:
            server.kill()
            server.wait()
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def product_port():
    """A listening TCP port on 127.0.0.1 standing for our own HTTP port."""
    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@contextmanager
def running_victim(agent: Agent, *, files: list):
    """Client A's server, running in its sandbox through the product's launch path, with A's file materialized."""
    with agent_launch(agent, reason="agent_run") as specs, \
            file_materialize(client=agent.client, agent=agent, file_ids=files, actor=agent.client,
                             reason="agent_run") as paths:
        tag = runtime.new_process_tag()
        with runtime.sandbox_launch(specs[0], tag=tag) as launch:
            proc = subprocess.Popen([launch.command, *launch.args], env=launch.env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                assert proc.poll() is None, "the victim's server did not start"
                yield proc.pid, next(iter(paths.values()))
            finally:
                proc.kill()
                proc.wait()
                runtime.kill_tagged(tag)


def test_a_hostile_server_of_another_client_gets_nothing(api, other_api, test_servers, public_internet_host,
                                                          product_port, settings):
    # A duration of its own, so that a process left by another test run on this machine is not taken for ours.
    leftover_seconds = f"300.{uuid.uuid4().int % 10**6:06d}"
    secret_a = "a-token-" + uuid.uuid4().hex
    file_secret_a = "a-file-secret-" + uuid.uuid4().hex
    victim = create(api, {"victim": {**TIME_SERVER, "env": {"VICTIM_API_KEY": secret_a}}}, model="passthrough")
    victim_agent = Agent.objects.get(pk=victim["agent_id"])
    stored = files_store(client=api.client_obj, agent=victim_agent, actor=api.client_obj, reason="test", files=[
        {"key": "VICTIM_FILE", "filename": "client.json", "data": json.dumps({"secret": file_secret_a}).encode()}])
    assert not stored.errors, stored.errors
    secret_b = "b-token-" + uuid.uuid4().hex
    url, page = public_internet_host
    pg_socket = str(Path(django_settings.DATABASES["default"].get("HOST") or "/nonexistent") / ".s.PGSQL.5432")

    with running_victim(victim_agent, files=[item["id"] for item in stored.files]) as (victim_pid, victim_file):
        attacks = [
            ("read_file", {"path": str(django_settings.DATA_DIR / "encryption.key")}),
            ("read_file", {"path": str(Path(django_settings.BASE_DIR) / "mcpagent" / "settings.py")}),
            ("read_file", {"path": "fastagent.config.yaml"}),
            ("list_dir", {"path": "/tmp"}),
            ("connect_unix", {"path": pg_socket}),
            ("connect_tcp", {"host": "127.0.0.1", "port": 6379}),
            ("connect_tcp", {"host": "127.0.0.1", "port": product_port}),
            ("http_get", {"url": f"http://127.0.0.1:{product_port}/"}),
            ("http_get", {"url": "http://169.254.169.254/latest/meta-data/"}),
            ("read_file", {"path": f"/proc/{victim_pid}/environ"}),
            ("process_environments", {}),
            ("list_dir", {"path": "/dev/shm"}),
            ("read_file", {"path": str(victim_file)}),
            ("parent_environment", {}),
            ("write_file", {"path": "/usr/evil", "text": "x"}),
            ("write_file", {"path": "/etc/evil", "text": "x"}),
            ("leave_process", {"seconds": leftover_seconds}),
            ("fork_many", {"count": 10_000}),
            ("allocate", {"gigabytes": 8}),
            ("leak_token", {}),
            ("whoami", {}),
            ("http_get", {"url": url}),
            ("trace_me", {}),
        ]
        playback = [
            {"role": "user", "text": "attack"},
            {"role": "assistant", "text": "", "tool_calls": [{"name": f"hostile__{tool}", "arguments": arguments}
                                                             for tool, arguments in attacks]},
            {"role": "assistant", "text": "done"},
        ]
        hostile = create(other_api, {"hostile": {**script("hostile"), "env": {"HOSTILE_TOKEN": secret_b}}},
                         model="playback", playback=playback)
        response = other_api.post(f"/api/agents/{hostile['agent_id']}/messages", {"message": "attack"}, format="json")
        assert response.status_code == 200, response.content
        body = response.json()
        results = [json.loads(call["result"]) if call["result"].startswith("{") else call["result"]
                   for call in body["tool_calls"]]
        assert len(results) == len(attacks), body
        outcome = dict(zip([f"{i}:{tool}" for i, (tool, _) in enumerate(attacks)], results))

        failed_attempts = [0, 1, 2, 4, 5, 6, 7, 8, 9, 12, 14, 15, 17, 18]
        for index in failed_attempts:
            key = f"{index}:{attacks[index][0]}"
            assert outcome[key]["ok"] is False, (key, outcome[key])
        # A private /tmp: nothing of the host's (at most the mount point of our virtual environment, when the
        # project lives under /tmp).
        assert not [name for name in outcome["3:list_dir"]["result"]
                    if not str(Path(sys.prefix).resolve()).startswith(f"/tmp/{name}/")
                    and not sys.prefix.startswith(f"/tmp/{name}/")], outcome["3:list_dir"]
        seen = outcome["10:process_environments"]["result"]
        assert len(seen) <= 4 and all(int(pid) < 10 for pid in seen), seen  # only its own processes
        assert outcome["11:list_dir"]["ok"] is False or outcome["11:list_dir"]["result"] == []
        parent = outcome["13:parent_environment"]
        assert django_settings.SECRET_KEY not in json.dumps(parent) and "HOSTILE_TOKEN" in json.dumps(parent)
        identity = json.loads(outcome["20:whoami"]) if isinstance(outcome["20:whoami"], str) else outcome["20:whoami"]
        assert identity["uid"] == 1000 and "CapEff:\t0000000000000000" in identity["caps"]
        assert outcome["21:http_get"] == {"ok": True, "result": page}
        assert outcome["22:trace_me"]["ok"] is False and "Operation not permitted" in outcome["22:trace_me"]["error"]
        assert outcome["19:leak_token"] == "token: ***"

    # Nothing of A's leaked anywhere, and nothing of the run is left on the host.
    turns = other_api.get(f"/api/agents/{hostile['agent_id']}/messages").content.decode()
    everything = response.content.decode() + turns
    assert all(secret not in everything for secret in (secret_a, file_secret_a, secret_b))
    assert_no_plaintext_in_db([secret_a, file_secret_a, secret_b])
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", leftover_seconds]]
    # The other client's agent still works.
    again = api.post(f"/api/agents/{victim['agent_id']}/messages",
                     {"message": '***CALL_TOOL get_current_time {"timezone": "UTC"}'}, format="json")
    assert again.status_code == 200 and again.json()["status"] == "ok", again.content


def test_a_server_past_its_wall_clock_limit_is_stopped_and_the_error_names_the_limit(api, test_servers, settings):
    agent = create(api, {"slow": script("slow_tool")}, model="passthrough")
    settings.SANDBOX_WALL_SECONDS = 2
    started = time.monotonic()
    response = api.post(f"/api/agents/{agent['agent_id']}/messages", {"message": "***CALL_TOOL wait_forever {}"},
                        format="json")
    assert time.monotonic() - started < 30
    assert response.status_code == 502, response.content
    error = response.json()["error"]
    assert error["details"]["reason"] == "sandbox_limit", error
    assert "slow" in error["message"] and "wall-clock time (SANDBOX_WALL_SECONDS=2)" in error["message"]


def test_sandbox_state_is_in_health(client, settings):
    settings.HEALTH_DETAILS_TOKEN = "health-token-for-this-test"
    response = client.get("/api/health", HTTP_AUTHORIZATION="Bearer health-token-for-this-test")
    state = response.json()["checks"]["sandbox"]
    assert state["ok"] is True and state["backend"] == "bwrap"


def test_unsandboxed_servers_need_an_explicit_setting(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.SANDBOX = "none"
    settings.ALLOW_UNSANDBOXED_SERVERS = False
    with pytest.raises(ImproperlyConfigured):
        sandbox.check_configuration()
    settings.ALLOW_UNSANDBOXED_SERVERS = True
    sandbox.check_configuration()
    assert sandbox.status()["warning"].startswith("MCP servers run UNSANDBOXED")


@pytest.mark.parametrize("entry", ["slack.com", "=127.0.0.1:8443", "slack.com=", "slack.com=127.0.0.1:port"])
def test_a_malformed_connect_to_entry_is_refused_at_start_up(settings, entry):
    from django.core.exceptions import ImproperlyConfigured

    settings.SANDBOX_NETWORK_CONNECT_TO = [entry]
    with pytest.raises(ImproperlyConfigured, match="host=address"):
        sandbox.check_configuration()
    settings.SANDBOX_NETWORK_CONNECT_TO = ["slack.com=127.0.0.1:8443", "example.com=[::1]", "api.x.io=gw.corp"]
    sandbox.check_configuration()


def _fetch_in_sandbox(spec: LaunchSpec, url: str) -> subprocess.CompletedProcess:
    with runtime.sandbox_launch(spec, tag=runtime.new_process_tag()) as launch:
        return subprocess.run([launch.command, *launch.args], env=launch.env, capture_output=True, text=True,
                              timeout=60)


def test_a_server_the_catalogue_narrows_to_its_domains_reaches_nothing_else(public_internet_host):
    url, page = public_internet_host
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    spec = LaunchSpec(name="narrow", label="Narrow", transport="stdio", command="python", args=["-c", code])
    assert _fetch_in_sandbox(spec, url).stdout.strip() == page
    spec.egress_hosts = ["api.example.com"]
    done = _fetch_in_sandbox(spec, url)
    assert done.returncode != 0 and "403" in done.stderr and page not in done.stdout


def test_connect_to_routes_a_host_to_another_address_that_is_checked_as_any_other(public_internet_host, settings):
    url, page = public_internet_host
    routed = url.replace(INTERNET_HOST, "api.example.com")
    code = f"import urllib.request; print(urllib.request.urlopen({routed!r}, timeout=10).read().decode())"
    spec = LaunchSpec(name="routed", label="Routed", transport="stdio", command="python", args=["-c", code])
    settings.SANDBOX_NETWORK_CONNECT_TO = [f"example.com={INTERNET_HOST}"]  # the domain and its subdomains
    assert _fetch_in_sandbox(spec, url).stdout.strip() == page
    # Routed to one of our own addresses: refused, and the refusal says why in its status text.
    settings.SANDBOX_NETWORK_CONNECT_TO = [f"example.com=127.0.0.1:{INTERNET_PORT}"]
    done = _fetch_in_sandbox(spec, url)
    assert done.returncode != 0 and page not in done.stdout
    assert "403: Refused by the mcpagent sandbox: api.example.com resolves to an internal address" in done.stderr


def test_packages_are_prefetched_once_then_servers_start_from_the_cache(settings, tmp_path):
    settings.SANDBOX_CACHE_DIR = tmp_path / "cache"
    launch = ("uvx", ["mcp-server-time==2026.10.19"])
    assert not prefetch.is_prefetched(*launch)
    assert prefetch.prefetch(*launch) == "fetched"
    assert prefetch.prefetch(*launch) == "cached" and prefetch.is_prefetched(*launch)
    spec = LaunchSpec(name="time", label="Time", transport="stdio", command="uvx", args=launch[1])
    check = runtime.validate_servers([spec], timeout=60)["time"]
    assert check.ok, check.error
    assert {"get_current_time", "convert_time"} <= {tool["name"] for tool in check.tools}


def test_an_interpreter_behind_a_symlink_is_mounted_where_we_run_it(tmp_path, monkeypatch):
    """sys.executable keeps the symlinked path (a worktree's .venv, a deploy's `current` link): the sandbox must
    have the environment there too, not only at its real path (bwrap: execvp ...: No such file or directory)."""
    from agents_app.sandbox import bwrap

    real = tmp_path / "real-venv"
    real.mkdir()
    (tmp_path / "link-venv").symlink_to(real)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "link-venv"))
    roots = bwrap._host_roots()
    assert str(real) in roots and str(tmp_path / "link-venv") in roots
