"""Load: N concurrent clients (default 200), each with its own API key, run the two-turn chat flow against the
production set-up on this machine, as the Procfile starts it: gunicorn with the product's settings
(mcpagent/gunicorn_conf.py: gthread workers, pooled database connections), a Celery worker, the package-prefetch
worker, a private redis-server and the embedded PostgreSQL with the bundled catalogue. Prints errors and p50/p95 per
turn.

Turn 1: the workflow request (the analysis runs in the worker; the web waits CHAT_WAIT_SECONDS for it, then the
client polls GET /api/sessions/{id}, as the API says). Turn 2: the credentials the plan asked for (placeholder
values; the agent creation this queues is the worker's business and not timed); a plan that asks for nothing (the
agent is being created already) or asks the user to pick a service has no credentials turn. All clients share
127.0.0.1, so the per-address rate limit is turned off for the run (API_RATE_LIMIT_PER_IP=off); each client has its
own key and stays within the per-client limits.

Two rounds by default, each with fresh clients: the clients start evenly over 10 s (as a load tool ramps its users
up; every flow lasts longer than that, so all of them are under way together), then all in the same instant (the
worst case: 200 first turns queue for two cores at once).
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, percentile, setup_django  # noqa: E402

DATABASE = "bench_load"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


async def _client_flow(http, key: str, message: str, stats: dict, poll_seconds: float | None,
                       delay: float = 0.0, plan_deadline: float = 300.0) -> None:
    import httpx

    await asyncio.sleep(delay)
    headers = {"Authorization": f"Bearer {key}"}
    flow_started = time.perf_counter()
    try:
        started = time.perf_counter()
        response = await http.post("/api/chat", json={"message": message}, headers=headers)
        stats["turn1"].append(time.perf_counter() - started)
        if response.status_code != 200:
            stats["errors"].append(f"turn 1: {response.status_code} {response.text[:200]}")
            return
        body = response.json()
        session_id = body["session_id"]
        # The chat answer names the session's state `session_status`, GET /api/sessions/{id} `status`.
        while body.get("session_status", body.get("status")) == "analysing":
            if time.perf_counter() - started > plan_deadline:
                stats["errors"].append(f"plan: not ready after {plan_deadline:.0f} s")
                return
            # As the API asks (Retry-After on an answer that says what to poll), unless --poll-seconds says.
            await asyncio.sleep(poll_seconds or float(response.headers.get("Retry-After", 1)))
            response = await http.get(f"/api/sessions/{session_id}", headers=headers)
            stats["polls"] += 1
            if response.status_code != 200:
                stats["errors"].append(f"poll: {response.status_code} {response.text[:200]}")
                return
            body = response.json()
        stats["plan"].append(time.perf_counter() - started)
        required = body.get("required_credentials", body.get("missing_credentials")) or []
        outcome = body.get("session_status", body.get("status"))
        stats["outcomes"][outcome] = stats["outcomes"].get(outcome, 0) + 1
        if outcome != "pending_credentials" or not required:
            return  # nothing to send: the agent is on its way, or the user is asked which service they mean
        credentials: dict[str, dict[str, str]] = {}
        for item in required:
            credentials.setdefault(item["mcp_server"], {})[item["credential_key"]] = f"bench-{session_id[:8]}-value"
        started = time.perf_counter()
        response = await http.post("/api/chat", headers=headers, json={
            "session_id": session_id, "message": "here are my credentials", "credentials": credentials})
        stats["turn2"].append(time.perf_counter() - started)
        if response.status_code == 400 and response.json()["error"]["code"] == "invalid_credentials":
            # Our placeholder values fail some services' format checks: a correct, complete answer, not an error.
            stats["refused_placeholders"].append(session_id)
        elif response.status_code != 200:
            stats["errors"].append(f"turn 2: {response.status_code} {response.text[:200]}")
    except httpx.HTTPError as exc:
        stats["errors"].append(f"transport: {type(exc).__name__}: {exc}")
    finally:
        stats["flows"].append((flow_started, time.perf_counter()))


async def _run(base_url: str, keys: list[str], requests: list[str], timeout: float,
               poll_seconds: float | None, ramp_seconds: float = 0.0) -> tuple[dict, float]:
    import httpx

    stats: dict = {"turn1": [], "plan": [], "turn2": [], "errors": [], "refused_placeholders": [], "outcomes": {},
                   "flows": [], "polls": 0}
    limits = httpx.Limits(max_connections=len(keys), max_keepalive_connections=len(keys))
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(_client_flow(http, key, requests[i % len(requests)], stats, poll_seconds,
                                            delay=ramp_seconds * i / len(keys))
                               for i, key in enumerate(keys)))
        return stats, time.perf_counter() - started


def _most_at_once(flows: list[tuple[float, float]]) -> int:
    """The most client flows under way at one moment."""
    edges = sorted([(start, 1) for start, _ in flows] + [(end, -1) for _, end in flows])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _wait_idle(seconds: float = 180.0) -> None:
    """Until no session is being analysed or creating its agent: the last round's work is done."""
    from sessions_app.models import Session

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and Session.objects.filter(status__in=Session.WORKER_STATUSES).exists():
        time.sleep(1)


def _report(stats: dict, took: float, ramp: float, load_before: float) -> None:
    load_after = os.getloadavg()
    clients = len(stats["flows"])
    arrival = f"started evenly over {ramp:g} s ({clients / ramp:.0f} new a second)" if ramp else "started all at once"
    print(f"\n## clients {arrival}: at most {_most_at_once(stats['flows'])} flows under way at once; all done in "
          f"{took:.1f} s; load average before {load_before:.1f}, at the end {load_after[0]:.1f} (1 min)")
    print(f"  errors: {len(stats['errors'])}")
    kinds: dict[str, list[str]] = {}
    for line in stats["errors"]:
        kinds.setdefault(line[:60], []).append(line)
    for kind, lines in sorted(kinds.items(), key=lambda item: -len(item[1]))[:10]:
        print(f"    {len(lines):4d} x {lines[0]}")
    print("  session after turn 1: " + ", ".join(f"{name} {count}" for name, count in
                                                 sorted(stats["outcomes"].items(), key=lambda item: -item[1])))
    print(f"  turn 2 answered 400 invalid_credentials (placeholder values failing a service's format check): "
          f"{len(stats['refused_placeholders'])}")
    print(f"  polls of GET /api/sessions/{{id}} while analysing: {stats['polls']}")
    for name, title in (("turn1", "turn 1 (request) HTTP answer"), ("plan", "turn 1 until the plan is ready"),
                        ("turn2", "turn 2 (credentials) HTTP answer")):
        values = stats[name]
        print(f"  {title:34s} n={len(values):3d}  p50 {percentile(values, 50):.2f} s  "
              f"p95 {percentile(values, 95):.2f} s  max {max(values, default=float('nan')):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--web-workers", type=int, default=None, help="WEB_CONCURRENCY (default: the product's)")
    parser.add_argument("--web-threads", type=int, default=None, help="WEB_THREADS (default: the product's)")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="run the Celery workers at this CPU niceness (web answers first on a shared machine)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--poll-seconds", type=float, default=None,
                        help="poll the session this often instead of as Retry-After says")
    parser.add_argument("--arrivals", type=lambda text: [float(x) for x in text.split(",")], default=[10.0, 0.0],
                        help="comma-separated rounds, each the seconds over which the clients start (evenly); 0 is "
                             "all at once (default: 10,0)")
    parser.add_argument("--database", default=DATABASE, help="database on the embedded server (made if missing)")
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="copy the web, worker and redis logs into this folder after the run")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each round's figures as soon as it ends
    if shutil.which("redis-server") is None:
        raise SystemExit("bench_load needs redis-server")

    setup_django(args.database)
    from mcpagent.env import environ_for_own_process
    from mcpagent.services import api_client_create

    keys = [api_client_create(name=f"load-{i}-{time.time_ns()}")[1]
            for i in range(args.clients * len(args.arrivals))]
    requests = [r["request"] for r in json.loads(
        (ROOT / "benchmarks" / "data" / "planner_requests.json").read_text())["requests"]]
    base = Path(tempfile.mkdtemp(prefix="mcpagent-load-"))
    redis_port, web_port = _free_port(), _free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = dict(environ_for_own_process(), MCPAGENT_DB_NAME=args.database, LOG_LEVEL="WARNING", REDIS_URL=redis_url,
               CELERY_BROKER_URL=redis_url, CELERY_RESULT_BACKEND=redis_url, API_RATE_LIMIT_PER_IP="off",
               PYTHONUNBUFFERED="1")
    for name in ("DATABASE_URL", "DB_POOL_MAX_SIZE", "MCPAGENT_CELERY_QUEUE", "MCPAGENT_PREFETCH_QUEUE"):
        env.pop(name, None)
    if args.web_workers:
        env["WEB_CONCURRENCY"] = str(args.web_workers)
    if args.web_threads:
        env["WEB_THREADS"] = str(args.web_threads)
    from mcpagent import gunicorn_conf

    web_workers = int(env.get("WEB_CONCURRENCY", gunicorn_conf.workers))
    web_threads = int(env.get("WEB_THREADS", gunicorn_conf.threads))
    procs = [_start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(base)], env, base / "redis.log")]
    try:
        nice = ["nice", "-n", str(args.worker_nice)] if args.worker_nice else []
        procs.append(_start([*nice, sys.executable, "-m", "celery", "-A", "mcpagent", "worker", "--pool=prefork",
                             f"--concurrency={args.worker_concurrency}", "--loglevel=WARNING", "--without-gossip",
                             "--without-mingle", "-n", f"load-{web_port}@%h"], env, base / "worker.log"))
        procs.append(_start([*nice, sys.executable, "-m", "celery", "-A", "mcpagent", "worker", "-Q", "celery.prefetch",
                             "--pool=prefork", "--concurrency=1", "--loglevel=WARNING", "--without-gossip",
                             "--without-mingle", "-n", f"load-prefetch-{web_port}@%h"], env, base / "prefetch.log"))
        procs.append(_start([str(Path(sys.executable).with_name("gunicorn")), "mcpagent.wsgi", "-c",
                             "python:mcpagent.gunicorn_conf", "--bind", f"127.0.0.1:{web_port}",
                             "--log-level", "warning"], env, base / "web.log"))
        import httpx

        base_url = f"http://127.0.0.1:{web_port}"
        for _ in range(600):
            try:
                if httpx.get(f"{base_url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit(f"the service did not become healthy:\n{(base / 'web.log').read_text()[-2000:]}")
        # Each gunicorn worker and pool process loads the embedding model once: warm them before timing.
        asyncio.run(_run(base_url, keys[:web_workers * 2], requests, args.timeout, args.poll_seconds))
        print(f"# bench_load — {time.strftime('%Y-%m-%d %H:%M')} UTC — {machine()}")
        print(f"{args.clients} concurrent clients (own API key each), two-turn chat flow; gunicorn {web_workers} "
              f"gthread workers x {web_threads} threads, Celery worker concurrency {args.worker_concurrency} + "
              f"{'(nice ' + str(args.worker_nice) + ') ' if args.worker_nice else ''}"
              f"prefetch worker, redis-server, embedded PostgreSQL")
        for round_number, ramp in enumerate(args.arrivals):
            if round_number:
                _wait_idle()
            round_keys = keys[args.clients * round_number:args.clients * (round_number + 1)]
            load_before = os.getloadavg()[0]
            stats, took = asyncio.run(_run(base_url, round_keys, requests, args.timeout, args.poll_seconds, ramp))
            _report(stats, took, ramp, load_before)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in base.glob("*.log"):
                shutil.copy(log, args.keep_logs / log.name)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
