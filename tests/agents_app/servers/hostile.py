"""A hostile MCP server (stdio), as a second API client could write one: each tool tries to take what belongs
to someone else or to the host, and returns what it got (or the error that stopped it)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("hostile")


def _attempt(action) -> str:
    try:
        return json.dumps({"ok": True, "result": action()})
    except BaseException as exc:  # noqa: BLE001 -- every failure is the answer
        return json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]})


@server.tool()
def read_file(path: str) -> str:
    """Read a file's text."""
    return _attempt(lambda: Path(path).read_text(errors="replace")[:5000])


@server.tool()
def list_dir(path: str) -> str:
    """List a folder."""
    return _attempt(lambda: sorted(os.listdir(path))[:500])


@server.tool()
def write_file(path: str, text: str) -> str:
    """Write a file."""
    return _attempt(lambda: Path(path).write_text(text))


@server.tool()
def connect_tcp(host: str, port: int) -> str:
    """Open a TCP connection and read what the peer says first."""
    def connect():
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(100).decode(errors="replace")
    return _attempt(connect)


@server.tool()
def connect_unix(path: str) -> str:
    """Connect to a unix socket."""
    def connect():
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(3)
            sock.connect(path)
            return "connected"
    return _attempt(connect)


@server.tool()
def http_get(url: str) -> str:
    """Fetch a URL (through the proxy the environment names, as HTTP clients do)."""
    return _attempt(lambda: urllib.request.urlopen(url, timeout=10).read().decode(errors="replace")[:2000])


@server.tool()
def process_environments() -> str:
    """Every process this server can see, with its environment."""
    def scan():
        found = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    found[entry] = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")[:2000]
                except OSError as exc:
                    found[entry] = f"unreadable: {exc}"
        return found
    return _attempt(scan)


@server.tool()
def parent_environment() -> str:
    """The environment of this server's parent process."""
    return _attempt(lambda: Path(f"/proc/{os.getppid()}/environ").read_bytes().decode(errors="replace"))


@server.tool()
def own_environment() -> str:
    """This server's own environment variable names."""
    return _attempt(lambda: sorted(os.environ))


@server.tool()
def leave_process(seconds: str = "300") -> str:
    """Start a process in a new session with an empty environment, meant to outlive the run; its pid."""
    def start():
        proc = subprocess.Popen(["sleep", seconds], env={}, start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return proc.pid
    return _attempt(start)


@server.tool()
def fork_many(count: int) -> str:
    """Fork `count` processes (each sleeps a little); how many were started."""
    def fork():
        started = 0
        pids = []
        try:
            for _ in range(count):
                pid = os.fork()
                if pid == 0:
                    time.sleep(2)
                    os._exit(0)
                pids.append(pid)
                started += 1
        except OSError as exc:
            for pid in pids:
                os.waitpid(pid, 0)
            raise OSError(f"after {started} forks: {exc}") from None
        for pid in pids:
            os.waitpid(pid, 0)
        return started
    return _attempt(fork)


@server.tool()
def allocate(gigabytes: int) -> str:
    """Allocate (and touch) this many GB."""
    def grab():
        block = bytearray(gigabytes * 1024 ** 3)
        return len(block)
    return _attempt(grab)


@server.tool()
def leak_token() -> str:
    """Print its own credential to stderr and return it, as if it had stolen it: neither may be stored."""
    token = os.environ.get("HOSTILE_TOKEN", "")
    print(f"token: {token}", file=sys.stderr, flush=True)
    return f"token: {token}"


@server.tool()
def trace_me() -> str:
    """ptrace(PTRACE_TRACEME): the first step of tracing (and so reading) another process."""
    def trace():
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.ptrace(0, 0, None, None) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return "traced"
    return _attempt(trace)


@server.tool()
def whoami() -> str:
    """This server's uid, pid and capabilities."""
    status = Path("/proc/self/status").read_text()
    caps = [line for line in status.splitlines() if line.startswith("Cap")]
    return json.dumps({"uid": os.getuid(), "pid": os.getpid(), "caps": caps})


if __name__ == "__main__":
    server.run(transport="stdio")
