"""Shared set-up for benchmark scripts: a dedicated database on the embedded server (so a benchmark never touches
the service's data or a running test's), Django initialised against it, the bundled catalogue loaded."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(database: str, *, load_catalogue: bool = True, fresh: bool = False) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")
    os.environ["MCPAGENT_DB_NAME"] = database
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if os.environ.get("DATABASE_URL"):
        raise SystemExit("benchmarks run on the embedded database: unset DATABASE_URL")
    from mcpagent import embedded_db

    import psycopg

    folder = Path(os.environ.get("MCPAGENT_DATA_DIR", ROOT / ".data")) / "postgres"
    socket_dir = embedded_db.ensure_running(folder)
    with psycopg.connect(host=str(socket_dir), user=embedded_db.SUPERUSER, password=embedded_db.password(folder),
                         dbname="postgres", autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    if load_catalogue:
        # Always imported (idempotent): a database kept from an earlier run gets the current catalogue's changes.
        started = time.perf_counter()
        call_command("load_default_catalogue", verbosity=0)
        print(f"(bundled catalogue imported into {database} in {time.perf_counter() - started:.1f} s)")


@contextmanager
def web_service(database: str, api_key: str, *, timeout: float) -> Iterator["httpx.Client"]:
    """The service as `make run` serves it (gunicorn, 2 workers) on a free port, on `database`, with no broker
    (tasks run in the request); yields an authenticated client once /api/health answers, stops it afterwards."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from mcpagent.env import environ_for_own_process

    env = dict(environ_for_own_process(), MCPAGENT_DB_NAME=database, LOG_LEVEL="WARNING")
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "mcpagent.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--timeout", str(int(timeout)), "--log-level", "warning"], cwd=ROOT, env=env,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {api_key}"},
                              timeout=timeout)
        for _ in range(200):
            try:
                if client.get("/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield client
    finally:
        server.terminate()
        server.wait(timeout=15)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    import platform

    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
