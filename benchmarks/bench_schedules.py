"""Schedule-to-run delay: from a schedule's due time to its run starting, with the real parts of production: a
`celery beat` process sending the tick every AGENT_SCHEDULE_TICK_SECONDS, a Celery worker (Redis, prefork,
concurrency 2) running the tick and the runs, agents with a real stdio server (mcp-server-time, `passthrough`).
Each agent has the cron schedule `* * * * *`, so its slots are whole minutes: delay = run.started_at - the minute
its run was queued for. Prints p50/p95/max over every run. Prints figures only.

    .venv/bin/python benchmarks/bench_schedules.py [--agents 2] [--minutes 3] [--tick 60]
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

DATABASE = "bench_schedules"
QUEUE = "bench-schedules"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
TIME_SERVER = {"command": "python", "args": ["-m", "mcp_server_time"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--tick", type=int, default=60, help="AGENT_SCHEDULE_TICK_SECONDS for beat")
    args = parser.parse_args()
    setup_django(DATABASE, load_catalogue=False, fresh=True)
    from django.db import connection

    from agents_app.models import AgentRun
    from agents_app.services import agent_create, agent_schedule_set, agent_validate
    from mcpagent.env import environ_for_own_process
    from mcpagent.services import api_client_create

    print(machine())
    client, _ = api_client_create(name=f"bench-schedules-{time.time_ns()}")
    agents = []
    for n in range(args.agents):
        agent = agent_create(client=client, servers={"time": TIME_SERVER}, user_prompt=f"time {n}",
                             workflow="Get the time", model="passthrough")
        agent = agent_validate(agent_id=agent.id)
        assert agent.status == "ready", agent.error
        agents.append(agent)
    env = dict(environ_for_own_process(), MCPAGENT_DB_NAME=connection.settings_dict["NAME"], REDIS_URL=REDIS_URL,
               CELERY_BROKER_URL=REDIS_URL, CELERY_RESULT_BACKEND=REDIS_URL, MCPAGENT_CELERY_QUEUE=QUEUE,
               AGENT_SCHEDULE_TICK_SECONDS=str(args.tick), LOG_LEVEL="WARNING")
    data = ROOT / ".data"
    data.mkdir(exist_ok=True)
    log = open(data / "bench-schedules.log", "w")
    beat_dir = tempfile.mkdtemp(prefix="bench-beat-")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mcpagent", "worker", "--pool=prefork", "--concurrency=2", "-Q", QUEUE,
         "--without-gossip", "--without-mingle", "-n", f"{QUEUE}@%h", "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mcpagent", "beat", "-s", os.path.join(beat_dir, "schedule"),
         "--loglevel=WARNING"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for agent in agents:
            agent_schedule_set(agent=agent, cron="* * * * *")
        started = time.monotonic()
        deadline = started + args.minutes * 60 + args.tick + 30
        while time.monotonic() < deadline:
            if worker.poll() is not None or beat.poll() is not None:
                raise SystemExit(f"worker or beat exited; see {log.name}")
            time.sleep(2)
        runs = list(AgentRun.objects.filter(agent__in=agents, trigger="schedule", started_at__isnull=False))
    finally:
        for proc in (beat, worker):
            try:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, 9)
        log.close()
    delays = [(r.started_at - r.created_at.replace(second=0, microsecond=0)).total_seconds() for r in runs]
    statuses = {s: sum(1 for r in runs if r.status == s) for s in {r.status for r in runs}}
    print(f"schedule-to-run delay ({len(runs)} scheduled runs of {args.agents} agents with cron '* * * * *', "
          f"beat tick {args.tick} s, {args.minutes} min; runs {statuses}):")
    if delays:
        print(f"  due time -> run started: p50 {percentile(delays, 50):.1f} s   p95 {percentile(delays, 95):.1f} s"
              f"   max {max(delays):.1f} s   (bounded by the tick: a slot waits for the next tick, then the queue)")
    else:
        print("  no scheduled run started (see .data/bench-schedules.log)")
    print(f"  host: {socket.gethostname()}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
