"""Fixtures shared by every test: API clients (two, to prove isolation), a real Redis, a real Celery worker."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from rest_framework.test import APIClient

from mcpagent.env import environ_for_own_process
from mcpagent.services import api_client_create

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def pytest_sessionfinish(session, exitstatus):
    """Stop the embedded PostgreSQL when this test run started it; one already running (`make run`, a shell that
    ran `embedded_db start`) is left alone."""
    from mcpagent import embedded_db

    if embedded_db.started_here:
        from django.conf import settings
        from django.db import connections

        connections.close_all()
        embedded_db.stop(Path(settings.DATABASES["default"]["HOST"]))


def _api(name: str) -> APIClient:
    client, key = api_client_create(name=name)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    api.client_obj = client
    api.raw_key = key
    return api


# Live token checks call the real providers (no internet here): off unless a test turns them on against the fake
# providers (tests/fakes/providers.py). The environment variable covers worker processes the tests start.
os.environ.setdefault("CREDENTIAL_VERIFY", "0")


@pytest.fixture(autouse=True)
def _no_live_token_checks(settings):
    settings.CREDENTIAL_VERIFY = False


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache; each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api(db) -> APIClient:
    """An authenticated DRF test client; `.client_obj` is its ApiClient."""
    return _api("client-x")


@pytest.fixture
def other_api(db) -> APIClient:
    """A second, unrelated client, for isolation tests."""
    return _api("client-y")


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


def _redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis. `make test` starts one when none answers; skip (with the reason) only if there is none."""
    if not _redis_answers(REDIS_URL):
        pytest.skip(f"no Redis answers at {REDIS_URL}; start redis-server to run the worker tests")
    # A Redis db per test database so concurrent test runs on one machine do not share queues.
    from django.conf import settings

    db_index = 1 + sum(settings.DATABASES["default"]["TEST"]["NAME"].encode()) % 15
    return f"{REDIS_URL.rstrip('/')}/{db_index}"


@pytest.fixture(autouse=True)
def _cold_runs_by_default(settings):
    """Runs start their servers for themselves (no warm pool) unless a test turns warm servers on: the pool
    would keep server processes past the test."""
    settings.AGENT_WARM_SERVERS = False


@pytest.fixture
def celery_worker(transactional_db, redis_url, settings):
    """A real `celery worker` process on Redis, against the test database; tasks sent from the test go to it.
    Runs are cold in it (tests/agents_app/test_warm_servers.py starts one that keeps servers warm)."""
    yield from celery_worker_process(settings, redis_url, concurrency=2, extra_env={"AGENT_WARM_SERVERS": "0"})


def celery_worker_process(settings, redis_url, *, concurrency: int, extra_env: dict):
    from django.db import connection

    from mcpagent.celery import app

    # Our pid in the name: a worker orphaned by a killed earlier run (its own session) never takes these tasks.
    queue = f"q-{settings.DATABASES['default']['TEST']['NAME']}-{os.getpid()}"
    env = environ_for_own_process()
    env.update(
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        CELERY_RESULT_BACKEND=redis_url,
        MCPAGENT_DB_NAME=connection.settings_dict["NAME"],
        MCPAGENT_CELERY_QUEUE=queue,
        PYTHONUNBUFFERED="1",
        # The tiny test servers (tests/agents_app/servers) may run in the worker too (the test_servers fixture).
        AGENT_ALLOWED_SCRIPT_DIRS=str(ROOT / "tests" / "agents_app" / "servers"),
        **extra_env,
    )
    log_path = ROOT / ".data" / f"worker-{settings.DATABASES['default']['TEST']['NAME']}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mcpagent", "worker", "--pool=prefork", f"--concurrency={concurrency}",
         "-Q", queue, "--loglevel=INFO", "--without-gossip", "--without-mingle", "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    old = {k: app.conf[k] for k in ("broker_url", "result_backend", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False, task_default_queue=queue)
    _forget_celery_connections(app)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # The web side measures this queue to decide whether to wait for the worker (mcpagent.waiting), not "celery",
    # which may hold messages no worker of this run will take.
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")
            if app.control.inspect(timeout=0.5, destination=[f"{queue}@{socket.gethostname()}"]).ping():
                break
        else:
            raise RuntimeError(f"celery worker did not answer within 90 s:\n{log_path.read_text()[-3000:]}")
        proc.log_path = log_path
        proc.queue = queue
        proc.env = env  # for other processes of the same set-up (celery beat)
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the test stopped it already
            pass
        log.close()
        app.conf.update(old)
        _forget_celery_connections(app)


def _forget_celery_connections(app) -> None:
    """Drop what the app cached for the previous broker/backend settings: an earlier test may have opened a
    connection pool (kombu's default amqp://localhost when no broker was set) or cached the disabled backend."""
    vars(app._local).pop("backend", None)
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(scope="session")
def _catalogue_rows(django_db_setup, django_db_blocker) -> dict[str, bytes]:
    """The bundled catalogue's rows as COPY data, table by table: loaded once per run (about 15 s), copied out, and
    the tables emptied again so that tests building their own small catalogues find them empty."""
    from django.core.management import call_command
    from django.db import connection

    from registry_app.search_index import CATALOGUE_TABLES

    tables = (*CATALOGUE_TABLES, "registry_app_serversource")
    with django_db_blocker.unblock():
        call_command("load_default_catalogue", verbosity=0)
        rows = {}
        for table in tables:
            with connection.connection.cursor().copy(f"COPY {table} TO STDOUT (FORMAT binary)") as copy:
                rows[table] = b"".join(bytes(block) for block in copy)
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
    return rows


@pytest.fixture
def bundled_catalogue(_catalogue_rows, db):
    """The real bundled catalogue (config/servers.json, 6,000 servers with their tools and embeddings) in the test
    database, copied in from memory in about a second.

    Inside the test's transaction the HNSW indexes are dropped first (and come back with the rollback): inserting
    15,000 vectors into them is 13 of the 14 s a load takes, and exact nearest neighbours over 6,000 rows take
    milliseconds. A test about the index builds it with `ensure_embedding_index`."""
    from django.db import connection

    from registry_app import search_index

    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%%USING hnsw%%'")
            for (index,) in cursor.fetchall():
                cursor.execute(f'DROP INDEX "{index}"')
        for table, data in _catalogue_rows.items():
            with connection.connection.cursor().copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                copy.write(data)
            # Rows copied with their ids: the identity sequence must start after them.
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
    search_index.tidy_tables()
    search_index.catalogue_changed()
    yield
    search_index.catalogue_changed()


@pytest.fixture
def git_repo(tmp_path, settings) -> Path:
    """A git repository in a folder a server's arguments may name (AGENT_ALLOWED_PATH_DIRS)."""
    settings.AGENT_ALLOWED_PATH_DIRS = [*settings.AGENT_ALLOWED_PATH_DIRS, str(tmp_path)]
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    (repo / "README.md").write_text("hello\n")
    for command in (["git", "init", "-q"], ["git", "add", "README.md"], ["git", "commit", "-q", "-m", "first commit"]):
        subprocess.run(command, cwd=repo, env=env, check=True)
    return repo
