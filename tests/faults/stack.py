"""The production set-up as real processes, private to one test module: an embedded PostgreSQL in its own data
folder (its own socket, never another checkout's database), a redis-server on a free port (append-only file, so a
restart keeps the queue), gunicorn and a Celery worker. Each can be stopped, killed and started again."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from mcpagent.env import environ_for_own_process

ROOT = Path(__file__).resolve().parent.parent.parent
SERVERS = Path(__file__).resolve().parent / "servers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Stack:
    def __init__(self, **env: str):
        # Under /tmp, readable: as root the embedded server runs as the `pgserver` user, which must reach its folder.
        self.base = Path(tempfile.mkdtemp(prefix="mcpagent-faults-", dir="/tmp"))
        self.base.chmod(0o755)
        self.redis_port = free_port()
        self.web_port = free_port()
        redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = environ_for_own_process()
        for name in ("DATABASE_URL", "MCPAGENT_DB_NAME", "MCPAGENT_DB_PASSWORD", "PROMETHEUS_MULTIPROC_DIR"):
            self.env.pop(name, None)
        self.env.update(
            MCPAGENT_DATA_DIR=str(self.base), REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
            CELERY_RESULT_BACKEND=redis_url, LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
            AGENT_ALLOWED_SCRIPT_DIRS=str(SERVERS), AGENT_CREATE_WAIT_SECONDS="0", AGENT_RUN_WAIT_SECONDS="0",
            API_RATE_LIMIT_PER_CLIENT="100000/min", API_RATE_LIMIT_PER_IP="100000/min", DB_CONNECT_TIMEOUT="2", **env,
        )
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.log_starts: dict[str, int] = {}
        self.api_key = ""

    # --- processes ---------------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = self.base / f"{name}.log"
        self.logs[name] = log
        self.log_starts[name] = log.stat().st_size if log.exists() else 0  # this start's lines come after
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=open(log, "a"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return self.logs[name].read_text(errors="replace")[-chars:] if name in self.logs else ""

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)  # the whole group: gunicorn's and celery's workers too
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    # --- services ------------------------------------------------------------------------------------------
    def start_redis(self) -> None:
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir",
                              str(self.base), "--appendonly", "yes", "--appendfsync", "always", "--save", ""])
        wait_until(lambda: self._redis_ping(), timeout=10, what="redis-server")

    def _redis_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start_database(self) -> None:
        self.db("start")

    def db(self, action: str) -> None:
        done = subprocess.run([sys.executable, "-m", "mcpagent.embedded_db", action], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]

    def set_up(self) -> None:
        self.start_redis()
        self.start_database()
        self.manage("migrate", "--noinput", "-v", "0")
        self.api_key = self.manage("create_api_client", "faults", "--quiet").strip()

    def start_web(self, wait: bool = True) -> None:
        self._spawn("web", [str(Path(sys.executable).with_name("gunicorn")), "mcpagent.wsgi", "--bind",
                            f"127.0.0.1:{self.web_port}", "--workers", "2", "--timeout", "60"])
        if wait:
            self.wait_web()

    def wait_web(self) -> None:
        wait_until(self._web_answers, timeout=60, what=f"gunicorn:\n{self.log_tail('web')}")

    def _web_answers(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.web_port}/api/health", timeout=2).status_code in (200, 503)
        except httpx.TransportError:
            return False

    def start_worker(self, wait: bool = True) -> None:
        self._spawn("worker", [sys.executable, "-m", "celery", "-A", "mcpagent", "worker", "--pool=prefork",
                               "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                               "-n", f"faults-{self.web_port}@%h"])
        if wait:
            self.wait_worker()

    def wait_worker(self) -> None:
        wait_until(lambda: b"ready." in self.logs["worker"].read_bytes()[self.log_starts["worker"]:], timeout=60,
                   what=f"celery worker:\n{self.log_tail('worker')}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.web_port}", timeout=30,
                            headers={"Authorization": f"Bearer {self.api_key}"})

    def tear_down(self) -> None:
        for name in list(self.procs):
            self.stop(name, signal.SIGKILL if name == "redis" else signal.SIGTERM)
        self.db("stop")
        shutil.rmtree(self.base, ignore_errors=True)
