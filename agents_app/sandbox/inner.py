"""The first program inside a sandbox: applies the limits, starts the MCP server, bridges its network.

Runs as `python -I -S inner.py NAME=VALUE... -- COMMAND ARGS...` inside bubblewrap, so it may use only the
standard library, and it imports little: it stands between every server and its start. It
- sets the resource limits (they are inherited by the server and everything it starts);
- runs the server with stdin/stdout/stderr passed through, and exits with its status;
- if a proxy port is given, listens on 127.0.0.1:PORT inside the sandbox's own network namespace and relays
  each connection to the host's egress proxy through the bind-mounted unix socket (the only way out);
- kills the server at the wall-clock limit, and writes which limit stopped it (if any) to the status file, so
  the host can name the limit in its error.
"""

import os
import resource
import signal
import sys

# select, socket and threading are imported by the network bridge alone: most servers start without one.

_LIMITS = {
    "memory_bytes": resource.RLIMIT_DATA,
    "processes": resource.RLIMIT_NPROC,
    "cpu_seconds": resource.RLIMIT_CPU,
    "open_files": resource.RLIMIT_NOFILE,
    "file_bytes": resource.RLIMIT_FSIZE,
}
_SIGNAL_LIMITS = {signal.SIGXCPU: "cpu_seconds", signal.SIGXFSZ: "file_bytes"}


def _report(status_path: str, limit: str, value: object) -> None:
    os.write(2, f"mcpagent sandbox: the server was stopped: it exceeded its {limit} limit ({value})\n".encode())
    if status_path:
        try:
            with open(status_path, "w") as handle:
                handle.write(limit)
        except OSError:
            pass


def _relay(a, b) -> None:
    import select

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
    import socket
    import threading

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
    split = argv.index("--")
    config = dict(item.split("=", 1) for item in argv[1:split])
    command = argv[split + 1:]
    status_path = config.get("status", "")
    for name, limit in _LIMITS.items():
        if int(config.get(name) or 0):
            resource.setrlimit(limit, (int(config[name]), int(config[name])))
    # Fork before any thread exists; the child becomes the server.
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            os.write(2, f"mcpagent sandbox: cannot start {command[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    wall = int(config.get("wall_seconds") or 0)
    stopped_by_wall = []

    def on_alarm(_number, _frame) -> None:
        stopped_by_wall.append(True)
        os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, on_alarm)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda n, _frame: os.kill(pid, n))
    if wall:
        signal.alarm(wall)
    if config.get("proxy_port"):
        _bridge(int(config["proxy_port"]), config["proxy_socket"])
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if stopped_by_wall:
        _report(status_path, "wall_seconds", wall)
        return 137
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number in _SIGNAL_LIMITS:
            limit = _SIGNAL_LIMITS[number]
            _report(status_path, limit, config.get(limit))
        return 128 + number
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
