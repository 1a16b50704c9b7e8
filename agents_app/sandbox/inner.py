"""The first program inside a sandbox: applies the limits, starts the MCP server, bridges its network.

Runs as `python -I -S inner.py CONFIG_JSON -- COMMAND ARGS...` inside bubblewrap, so it may use only the
standard library and must start fast. It
- sets the resource limits (they are inherited by the server and everything it starts);
- if a proxy port is given, listens on 127.0.0.1:PORT inside the sandbox's own network namespace and relays
  each connection to the host's egress proxy through the bind-mounted unix socket (the only way out);
- runs the server with stdin/stdout/stderr passed through, and exits with its status;
- kills the server at the wall-clock limit, and writes which limit stopped it (if any) to the status file, so
  the host can name the limit in its error.
"""

import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading

_LIMITS = {
    "memory_bytes": resource.RLIMIT_DATA,
    "processes": resource.RLIMIT_NPROC,
    "cpu_seconds": resource.RLIMIT_CPU,
    "open_files": resource.RLIMIT_NOFILE,
    "file_bytes": resource.RLIMIT_FSIZE,
}
_SIGNAL_LIMITS = {signal.SIGXCPU: "cpu_seconds", signal.SIGXFSZ: "file_bytes"}


def _report(status_path: str, limit: str, value: object) -> None:
    sys.stderr.write(f"mcpagent sandbox: the server was stopped: it exceeded its {limit} limit ({value})\n")
    sys.stderr.flush()
    if status_path:
        try:
            with open(status_path, "w") as handle:
                json.dump({"limit": limit, "value": value}, handle)
        except OSError:
            pass


def _relay(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [])
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (b if source is a else a).sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def _bridge(port: int, unix_path: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)

    def serve() -> None:
        while True:
            client, _ = listener.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(unix_path)
            except OSError:
                client.close()
                upstream.close()
                continue
            threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    command = argv[3:]
    status_path = config.get("status", "")
    for name, value in config.get("limits", {}).items():
        if name in _LIMITS and value:
            resource.setrlimit(_LIMITS[name], (value, value))
    if config.get("proxy_port"):
        _bridge(config["proxy_port"], config["proxy_socket"])
    try:
        server = subprocess.Popen(command, close_fds=True)
    except OSError as exc:
        sys.stderr.write(f"mcpagent sandbox: cannot start {command[0]}: {exc.strerror}\n")
        return 127
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: server.send_signal(number))
    wall = config.get("wall_seconds") or None
    try:
        code = server.wait(timeout=wall)
    except subprocess.TimeoutExpired:
        _report(status_path, "wall_seconds", wall)
        server.kill()
        server.wait()
        return 137
    if code < 0 and -code in _SIGNAL_LIMITS:
        limit = _SIGNAL_LIMITS[-code]
        _report(status_path, limit, config["limits"].get(limit))
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
