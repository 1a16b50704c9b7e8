"""Every MCP server we start goes through here: `sandboxed(...)` turns a launch into a sandboxed one.

The servers are third-party programs started with users' secrets, so each runs in its own bubblewrap sandbox
(see bwrap.py for what it sees), reaches the network only through the egress proxy (egress.py), and is held to
limits (inner.py, cgroups.py). SANDBOX=none starts servers directly, only with ALLOW_UNSANDBOXED_SERVERS=1.
If the sandbox cannot be set up, the launch fails with SandboxUnavailable: never a silent fallback.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agents_app.sandbox import bwrap, cgroups, seccomp
from agents_app.sandbox.bwrap import SandboxUnavailable
from agents_app.sandbox.egress import EgressPolicy, egress_proxy

__all__ = ["SandboxUnavailable", "SandboxedLaunch", "sandboxed", "status", "check_configuration"]
BACKENDS = ("bwrap", "none")
LIMIT_NAMES = {
    "memory_bytes": ("memory", "SANDBOX_MEMORY_MB"), "memory": ("memory", "SANDBOX_MEMORY_MB"),
    "processes": ("processes", "SANDBOX_MAX_PROCESSES"), "cpu_seconds": ("CPU time", "SANDBOX_CPU_SECONDS"),
    "open_files": ("open files", "SANDBOX_MAX_OPEN_FILES"), "file_bytes": ("file size", "SANDBOX_MAX_FILE_MB"),
    "wall_seconds": ("wall-clock time", "SANDBOX_WALL_SECONDS"),
}


def check_configuration() -> None:
    """Refuse a setting that would run servers unsandboxed by accident (called at start-up)."""
    if settings.SANDBOX not in BACKENDS:
        raise ImproperlyConfigured(f"SANDBOX must be one of {', '.join(BACKENDS)}, not {settings.SANDBOX!r}")
    if settings.SANDBOX == "none" and not settings.ALLOW_UNSANDBOXED_SERVERS:
        raise ImproperlyConfigured("SANDBOX=none runs third-party MCP servers with full access to this host; "
                                   "set ALLOW_UNSANDBOXED_SERVERS=1 as well if you really mean it")
    if settings.SANDBOX_NETWORK not in ("proxy", "none"):
        raise ImproperlyConfigured("SANDBOX_NETWORK must be proxy or none")
    for entry in settings.SANDBOX_NETWORK_CONNECT_TO:
        host, _, target = entry.partition("=")
        if not host or not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?", target):
            raise ImproperlyConfigured(f"SANDBOX_NETWORK_CONNECT_TO entries are host=address[:port], not {entry!r}")


def enabled() -> bool:
    return settings.SANDBOX != "none"


@dataclass
class SandboxedLaunch:
    """How to start one server (hand these to the MCP client), and what to release after it stopped."""

    command: str
    args: list[str]
    env: dict[str, str]
    cwd: str | None
    server: str = ""
    _cleanup: list = field(default_factory=list)
    _status_dir: str = ""
    _cgroup: cgroups.SandboxCgroup | None = None

    def limit_hit(self) -> str | None:
        """The limit the server ran into, in words with its setting ("memory (SANDBOX_MEMORY_MB=2048)")."""
        hits: list[str] = []
        if self._status_dir:
            try:
                hits.append(Path(self._status_dir, "limit").read_text().strip())
            except OSError:
                pass
        if self._cgroup is not None:
            hits.extend(self._cgroup.limit_hits())
        for hit in hits:
            words, setting = LIMIT_NAMES.get(hit, (hit, ""))
            return f"{words} ({setting}={getattr(settings, setting, '')})" if setting else words
        return None

    def close(self) -> None:
        if self._cgroup is not None:
            self._cgroup.kill_and_remove()
        for release in reversed(self._cleanup):
            release()
        self._cleanup.clear()


# The host's network configuration (CA bundles, package registry mirrors) that launchers such as npx and uvx
# need to fetch a server; operator settings, never secrets. A server's own env wins; inside a sandbox, the
# proxy and cache variables are the sandbox's own.
_NETWORK_ENV = (
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PIP_CERT",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_CACHE_DIR", "npm_config_registry", "npm_config_cache",
)


def host_network_env() -> dict[str, str]:
    names = (*_NETWORK_ENV, *settings.AGENT_PASSTHROUGH_ENV)
    env = {name: os.environ[name] for name in names if name in os.environ}
    # uvx runs PyPI servers on this interpreter (3.12) unless told otherwise, not the machine's default python.
    env.setdefault("UV_PYTHON", os.environ.get("UV_PYTHON", sys.executable))
    return env


@contextmanager
def sandboxed(*, server: str, executable: str, args: list[str], env: dict[str, str], cwd: str | None,
              readonly: list[str] = (), writable: list[str] = (), only_hosts: list[str] = (),
              writable_caches: bool = False, prefetched: bool = False,
              proxy_env: list[str] = ()) -> Iterator[SandboxedLaunch]:
    """The launch of `executable args` with `env` for the block: sandboxed unless SANDBOX=none. Start the server
    inside the block; when the block ends, everything of the sandbox is gone (processes, sockets, folders).
    `proxy_env`: variables of the server's own that must carry the egress proxy's URL (see bwrap.sandbox_env)."""
    env = {**host_network_env(), **env}
    if not enabled():
        yield SandboxedLaunch(command=executable, args=list(args), env=dict(env), cwd=cwd, server=server)
        return
    launch = _prepare(server=server, executable=executable, args=args, env=env, readonly=list(readonly),
                      writable=list(writable), only_hosts=list(only_hosts), writable_caches=writable_caches,
                      prefetched=prefetched, proxy_env=list(proxy_env))
    try:
        yield launch
    finally:
        launch.close()


def _prepare(*, server: str, executable: str, args: list[str], env: dict[str, str], readonly: list[str],
             writable: list[str], only_hosts: list[str], writable_caches: bool, prefetched: bool,
             proxy_env: list[str]) -> SandboxedLaunch:
    launch = SandboxedLaunch(command="", args=[], env=dict(env), cwd=None, server=server)
    try:
        # Private (0700): outside its user namespace the sandbox's user is ours, so it may write there which
        # limit stopped it.
        status_dir = tempfile.mkdtemp(prefix="mcpagent-sandbox-status-")
        launch._cleanup.append(lambda: shutil.rmtree(status_dir, ignore_errors=True))
        launch._status_dir = status_dir
        socket_path = None
        if settings.SANDBOX_NETWORK == "proxy":
            proxy = egress_proxy()
            socket_path = proxy.open(EgressPolicy(server=server, only_hosts=list(only_hosts),
                                                  allow_internal=list(settings.SANDBOX_NETWORK_ALLOW_HOSTS),
                                                  connect_to=list(settings.SANDBOX_NETWORK_CONNECT_TO)))
            launch._cleanup.append(lambda: proxy.close(socket_path))
        seccomp_filter = seccomp.filter_path()
        argv = bwrap.command(executable=executable, args=list(args), inherited_env=list(env), readonly=readonly,
                             writable=writable, egress_socket=socket_path, status_dir=status_dir,
                             wall_seconds=settings.SANDBOX_WALL_SECONDS, writable_caches=writable_caches,
                             prefetched=prefetched, seccomp_fd=_SECCOMP_FD if seccomp_filter else None,
                             proxy_env=proxy_env)
        group = cgroups.create(max_processes=settings.SANDBOX_MAX_PROCESSES,
                               memory_bytes=settings.SANDBOX_MEMORY_MB * 1024 * 1024)
        launch._cgroup = group
        if seccomp_filter or group.dirs:
            # A shell on the host opens the seccomp filter for bwrap, joins the cgroups, and then becomes bwrap:
            # everything the server starts is in them.
            launch.command, launch.args = "/bin/sh", ["-c", _LAUNCHER_SCRIPT, "mcpagent-sandbox",
                                                      seccomp_filter or "", *group.procs_files, "--", *argv]
        else:
            launch.command, launch.args = argv[0], argv[1:]
    except BaseException:
        launch.close()
        raise
    return launch


_SECCOMP_FD = 3
_LAUNCHER_SCRIPT = ('[ -n "$1" ] && exec 3<"$1"; shift; '
                    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"')


@cache
def _self_test() -> str | None:
    """None if a sandbox starts on this machine, else why not (probed once per process)."""
    with tempfile.TemporaryDirectory(prefix="mcpagent-sandbox-probe-") as status_dir:
        try:
            argv = bwrap.command(executable="/bin/true", args=[], inherited_env=[], readonly=[], writable=[],
                                 egress_socket=None, status_dir=status_dir, wall_seconds=10)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                                  env={"PATH": os.environ.get("PATH", "")})
        except SandboxUnavailable as exc:
            return str(exc)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap could not be run: {exc}"
    if done.returncode != 0:
        return f"bwrap failed: {done.stderr.strip()[:300]}"
    return None


def status() -> dict:
    """The sandbox's state for /api/health."""
    if not enabled():
        return {"ok": True, "backend": "none", "warning": "MCP servers run UNSANDBOXED (ALLOW_UNSANDBOXED_SERVERS=1)"}
    problem = _self_test()
    if problem:
        return {"ok": False, "backend": settings.SANDBOX, "error": problem}
    state = {"ok": True, "backend": settings.SANDBOX, "network": settings.SANDBOX_NETWORK,
             "cgroups": cgroups.available(), "seccomp": seccomp.filter_path() is not None}
    if "pids" not in state["cgroups"] and os.geteuid() == 0:
        state["warning"] = "running as root without a pids cgroup: the process limit is not enforced"
    return state
