"""Agent benchmarks (issue 6). Prints figures only.

1. Agent creation with one real stdio server (mcp-server-time) validated, through HTTP (gunicorn, no broker:
   validation runs inside the request): p50/p95 over N creations (target p95 <= 2 s).
2. 20 creations queued at once to a real Celery worker (Redis, prefork, concurrency 2): none lost, time to
   drain, the worker's RSS (main + pool processes) at baseline / peak / after, leftover server processes.

    .venv/bin/python benchmarks/bench_agents.py [--runs 30] [--queued 20]
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, percentile, setup_django, web_service  # noqa: E402

DATABASE = "bench_agents"
QUEUE = "bench-agents"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
TIME_SERVER = {"command": "python", "args": ["-m", "mcp_server_time"]}
BODY = {"mcp_config": {"mcpServers": {"time": TIME_SERVER}}, "user_prompt": "Tell me the time in UTC",
        "workflow": "Get the current time", "model": "passthrough"}


def creation_latency(runs: int) -> None:
    from mcpagent.services import api_client_create

    _, key = api_client_create(name=f"bench-agents-{time.time_ns()}")
    with web_service(DATABASE, key, timeout=120) as client:
        for _ in range(2):  # one warm-up per gunicorn worker (imports, DB connection)
            assert client.post("/api/agents/create", json=BODY).status_code == 201
        took = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.post("/api/agents/create", json=BODY)
            took.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
        validation = []
        from agents_app.models import Agent

        for agent in Agent.objects.order_by("-created_at")[:runs]:
            validation.append(agent.metadata["validation"]["servers"]["time"]["seconds"])
        print(f"agent creation with one stdio server validated (POST /api/agents/create, {runs} runs):")
        print(f"  request:              p50 {percentile(took, 50):.2f} s   p95 {percentile(took, 95):.2f} s"
              f"   max {max(took):.2f} s   (target p95 <= 2 s)")
        print(f"  server start+list:    p50 {percentile(validation, 50):.2f} s"
              f"   p95 {percentile(validation, 95):.2f} s")


def server_import_reference(times: int = 5) -> None:
    """How long the server itself needs to import, right now on this machine: the floor under validation."""
    took = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mcp_server_time.server"], check=True)
        took.append(time.perf_counter() - started)
    load = os.getloadavg()[0]
    print(f"reference: `python -c 'import mcp_server_time.server'` p50 {percentile(took, 50):.2f} s"
          f"   (load average {load:.1f} on {os.cpu_count()} cores)")


def _worker_tree(pid: int) -> list:
    import psutil

    main = psutil.Process(pid)
    return [main, *main.children(recursive=True)]


def _rss_mb(pid: int) -> float:
    import psutil

    total = 0
    for proc in _worker_tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1e6


def queued_creations(count: int) -> None:
    from django.conf import settings
    from django.db import connection
    from django.db.models import Count

    from agents_app import runtime
    from agents_app.models import Agent
    from agents_app.services import agent_create
    from agents_app.tasks import agent_validate_task
    from mcpagent.celery import app
    from mcpagent.env import environ_for_own_process
    from mcpagent.services import api_client_create

    client, _ = api_client_create(name=f"bench-agents-q-{time.time_ns()}")
    env = dict(environ_for_own_process(), MCPAGENT_DB_NAME=connection.settings_dict["NAME"], REDIS_URL=REDIS_URL,
               CELERY_BROKER_URL=REDIS_URL, CELERY_RESULT_BACKEND=REDIS_URL, MCPAGENT_CELERY_QUEUE=QUEUE,
               LOG_LEVEL="WARNING")
    log = open(ROOT / ".data" / "bench-agents-worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mcpagent", "worker", "--pool=prefork", "--concurrency=2", "-Q", QUEUE,
         "--without-gossip", "--without-mingle", "-n", f"{QUEUE}@%h", "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    app.conf.update(broker_url=REDIS_URL, result_backend=REDIS_URL, task_always_eager=False, task_default_queue=QUEUE)
    try:
        deadline = time.monotonic() + 90
        while not app.control.inspect(timeout=0.5, destination=[f"{QUEUE}@{socket.gethostname()}"]).ping():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start; see {log.name}")

        def create_all(n: int) -> list:
            # One client queues them all: its cap on creations in progress is lifted for this measurement.
            settings.AGENT_MAX_CONCURRENT_CREATIONS_PER_CLIENT = 0
            agents = [agent_create(client=client, servers={"time": TIME_SERVER}, user_prompt=f"time {i}",
                                   workflow="Get the time", model="passthrough") for i in range(n)]
            for agent in agents:
                agent_validate_task.delay(str(agent.id))
            return [a.id for a in agents]

        def wait(ids: list, seconds: float, sample: list | None = None) -> float:
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                if sample is not None:
                    sample.append(_rss_mb(worker.pid))
                if not Agent.objects.filter(id__in=ids, status__in=["creating", "validating"]).exists():
                    break
                time.sleep(0.1)
            return time.monotonic() - started

        wait(create_all(4), 120)  # warm-up: each pool process imports and connects once
        time.sleep(2)
        baseline = _rss_mb(worker.pid)
        pool_before = {p.pid for p in _worker_tree(worker.pid)}
        samples: list[float] = []
        ids = create_all(count)
        drained = wait(ids, 300, samples)
        statuses = dict(Agent.objects.filter(id__in=ids).values_list("status").annotate(n=Count("id")))
        time.sleep(3)
        after = _rss_mb(worker.pid)
        pool_after = {p.pid for p in _worker_tree(worker.pid)}
        leftovers = [p for pid in pool_after for p in runtime.tagged_processes(runtime.process_tag_prefix(pid))]
        extra_children = pool_after - pool_before
        lost = count - statuses.get("ready", 0) - statuses.get("failed", 0)
        print(f"{count} creations queued at once to one worker (prefork, concurrency 2, Redis):")
        print(f"  outcome: ready {statuses.get('ready', 0)}, failed {statuses.get('failed', 0)}, lost {lost}"
              f"   drained in {drained:.1f} s ({drained / count:.2f} s per agent)")
        print(f"  worker RSS (main + pool): baseline {baseline:.0f} MB   peak {max(samples or [baseline]):.0f} MB"
              f"   after {after:.0f} MB   ({after - baseline:+.0f} MB)")
        print(f"  leftover server processes: {len(leftovers)}   new worker children: {len(extra_children)}"
              f"   worker alive: {worker.poll() is None}")
        validation = [a.metadata["validation"]["servers"]["time"]["seconds"]
                      for a in Agent.objects.filter(id__in=ids, status="ready")]
        print(f"  server start+list inside the worker: p50 {percentile(validation, 50):.2f} s"
              f"   p95 {percentile(validation, 95):.2f} s")
    finally:
        os.killpg(worker.pid, 15)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, 9)
        log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--queued", type=int, default=20)
    options = parser.parse_args()
    setup_django(DATABASE, load_catalogue=False, fresh=True)
    print(f"# bench_agents — {time.strftime('%Y-%m-%d')} — {machine()}")
    server_import_reference()
    creation_latency(options.runs)
    queued_creations(options.queued)
