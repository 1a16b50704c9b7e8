"""Agent message latency, warm vs cold servers. Prints figures only.

A ready agent with two stdio servers (mcp-server-time, mcp-server-git), each started in the bubblewrap sandbox,
gets a `passthrough` message that makes one real tool call (`***CALL_TOOL get_current_time {...}`), run by a real
Celery worker (Redis, prefork, one process):
- cold: a worker with AGENT_WARM_SERVERS=0, so every message starts both servers (what a pool miss costs);
- warm: a worker that keeps the agent's servers running (one warm-up message first).
Time: from queuing the run to the task's result (Redis), in the benchmark process; and the run's own seconds in
the worker. Goals: warm p95 <= 0.5 s, cold p95 <= 3 s.

    .venv/bin/python benchmarks/bench_runs.py [--runs 20] [--cold-runs 10]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, percentile, setup_django  # noqa: E402

DATABASE = "bench_runs"
QUEUE = "bench-runs"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
MESSAGE = '***CALL_TOOL get_current_time {"timezone": "UTC"}'


def git_repository(folder: Path) -> Path:
    repo = folder / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com"}
    (repo / "README.md").write_text("bench\n")
    for command in (["git", "init", "-q"], ["git", "add", "README.md"], ["git", "commit", "-q", "-m", "first"]):
        subprocess.run(command, cwd=repo, env=env, check=True)
    return repo


def start_worker(extra_env: dict[str, str]) -> subprocess.Popen:
    from django.db import connection

    from mcpagent.celery import app
    from mcpagent.env import environ_for_own_process

    env = dict(environ_for_own_process(), MCPAGENT_DB_NAME=connection.settings_dict["NAME"], REDIS_URL=REDIS_URL,
               CELERY_BROKER_URL=REDIS_URL, CELERY_RESULT_BACKEND=REDIS_URL, MCPAGENT_CELERY_QUEUE=QUEUE,
               LOG_LEVEL="WARNING", **extra_env)
    log = open(ROOT / ".data" / "bench-runs-worker.log", "a")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mcpagent", "worker", "--pool=prefork", "--concurrency=1", "-Q", QUEUE,
         "--without-gossip", "--without-mingle", "-n", f"{QUEUE}@%h", "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    app.conf.update(broker_url=REDIS_URL, result_backend=REDIS_URL, task_always_eager=False, task_default_queue=QUEUE)
    deadline = time.monotonic() + 90
    while not app.control.inspect(timeout=0.5, destination=[f"{QUEUE}@{socket.gethostname()}"]).ping():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start; see {log.name}")
    return worker


def stop_worker(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, 15)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, 9)


def messages(agent, count: int) -> tuple[list[float], list[float], list[bool]]:
    from agents_app.models import AgentRun
    from agents_app.services import agent_message_send
    from agents_app.tasks import agent_run_task

    took, in_worker, warm = [], [], []
    for _ in range(count):
        started = time.perf_counter()
        run = agent_message_send(agent=agent, message=MESSAGE)
        status = agent_run_task.delay(str(run.id)).get(timeout=120, interval=0.005)
        took.append(time.perf_counter() - started)
        run = AgentRun.objects.get(pk=run.pk)
        assert status == "succeeded" and '"timezone":"UTC"' in run.reply, (status, run.error)
        in_worker.append(run.metadata["seconds"])
        warm.append(run.metadata.get("warm_servers", False))
    return took, in_worker, warm


def server_import_reference(times: int = 3) -> None:
    """The floor under a cold start right now: the server's own imports, outside any sandbox, and the load."""
    took = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mcp_server_time.server"], check=True)
        took.append(time.perf_counter() - started)
    print(f"  reference: `python -c 'import mcp_server_time.server'` p50 {percentile(took, 50):.2f} s"
          f"   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


def show(label: str, took: list[float], in_worker: list[float], warm: list[bool], goal: str) -> None:
    print(f"  {label:<5} ({len(took)} messages, {sum(warm)} on warm servers): "
          f"p50 {percentile(took, 50):.3f} s   p95 {percentile(took, 95):.3f} s   max {max(took):.3f} s   "
          f"(in the worker p50 {percentile(in_worker, 50):.3f} s)   goal p95 <= {goal}")


def main(runs: int, cold_runs: int) -> None:
    from django.conf import settings

    from agents_app.models import Agent
    from agents_app.services import agent_create, agent_validate
    from mcpagent.services import api_client_create

    folder = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    repo = git_repository(folder)
    settings.AGENT_ALLOWED_PATH_DIRS = [*settings.AGENT_ALLOWED_PATH_DIRS, str(folder)]
    settings.AGENT_MAX_CONCURRENT_RUNS_PER_CLIENT = 0
    client, _ = api_client_create(name=f"bench-runs-{time.time_ns()}")
    servers = {"time": {"command": "python", "args": ["-m", "mcp_server_time"]},
               "git": {"command": "python", "args": ["-m", "mcp_server_git", "--repository", str(repo)]}}
    agent = agent_create(client=client, servers=servers, user_prompt="Time and repository status",
                         workflow="Get the time", model="passthrough")
    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.READY, agent.error
    print(f"one passthrough message with one tool call, agent with 2 sandboxed stdio servers (time, git), "
          f"sandbox {settings.SANDBOX}:")
    worker_env = {"AGENT_ALLOWED_PATH_DIRS": str(folder)}

    server_import_reference()
    worker = start_worker({**worker_env, "AGENT_WARM_SERVERS": "0"})
    try:
        messages(agent, 1)  # the worker process's first run imports fast-agent (about 1.3 s): not a server start
        show("cold", *messages(agent, cold_runs), goal="3 s")
    finally:
        stop_worker(worker)

    worker = start_worker({**worker_env, "AGENT_WARM_SERVERS": "1", "AGENT_WARM_IDLE_SECONDS": "600"})
    try:
        first, _, _ = messages(agent, 1)
        print(f"  first message on a fresh warm worker (imports fast-agent, starts the servers): {first[0]:.2f} s")
        show("warm", *messages(agent, runs), goal="0.5 s")
    finally:
        stop_worker(worker)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=10)
    options = parser.parse_args()
    setup_django(DATABASE, load_catalogue=False, fresh=True)
    print(f"# bench_runs — {time.strftime('%Y-%m-%d')} — {machine()}")
    main(options.runs, options.cold_runs)
