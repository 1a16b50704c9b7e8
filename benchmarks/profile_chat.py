"""Where a chat turn's time goes: pyinstrument profiles of the web side of turn 1 (the request: session, queueing
the analysis), of turn 2 (the credentials) and of the worker's analysis, run in this process on a bench database
with the bundled catalogue. Prints time per call and writes each profile as text (--out). Not part of `make bench`:
a tool for finding slow code (bench_load.py's README figures cite its output).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, setup_django  # noqa: E402


def _profiled(name: str, calls: int, call, out: Path) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    started, cpu = time.perf_counter(), time.process_time()
    profiler.start()
    for i in range(calls):
        call(i)
    profiler.stop()
    wall, cpu = (time.perf_counter() - started) / calls, (time.process_time() - cpu) / calls
    print(f"{name:28s} {wall * 1000:7.1f} ms wall, {cpu * 1000:6.1f} ms cpu in this process, per call ({calls})")
    (out / f"profile-{name.replace(' ', '-')}.txt").write_text(profiler.output_text(unicode=False, color=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="bench_profile")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    # A worker of our own is not started: the analysis is queued to the in-process broker and profiled on its own.
    os.environ.update(CHAT_WAIT_SECONDS="0", CELERY_BROKER_URL="memory://localhost/",
                      CELERY_RESULT_BACKEND="cache+memory://", API_RATE_LIMIT_PER_CLIENT="off",
                      API_RATE_LIMIT_PER_IP="off")
    os.environ.pop("REDIS_URL", None)
    setup_django(args.database)
    from django.conf import settings
    from django.test import Client

    import mcpagent.wsgi  # noqa: F401  (what a web process loads before its first request)
    from agents_app.master.service import analyze_request
    from mcpagent.services import api_client_create
    from sessions_app.models import Session

    settings.ALLOWED_HOSTS = ["*"]
    requests = [item["request"] for item in json.loads(
        (ROOT / "benchmarks" / "data" / "planner_requests.json").read_text())["requests"]]
    keys = [api_client_create(name=f"profile-{i}-{time.time_ns()}")[1] for i in range(args.calls + 5)]
    http = Client()  # one handler, as in a web process (each Client builds its middleware anew)
    args.out.mkdir(parents=True, exist_ok=True)

    def turn1(i: int):
        return http.post("/api/chat", data=json.dumps({"message": requests[i % len(requests)]}),
                         content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {keys[i]}")

    for i in range(args.calls, args.calls + 5):
        turn1(i)  # warm
    _profiled("turn 1 web", args.calls, turn1, args.out)

    for request in requests[:3]:
        analyze_request(request=request)  # warm: embedding model, indexes
    _profiled("analysis worker", args.calls, lambda i: analyze_request(request=requests[3 + i % len(requests)]),
              args.out)

    sessions = []
    for i in range(args.calls):
        session = Session.objects.filter(pk=turn1(i).json()["session_id"]).get()
        session.context["request"] = requests[i % len(requests)]
        session.context["plan"] = analyze_request(request=session.context["request"]).to_dict()
        session.status = Session.Status.PENDING_CREDENTIALS
        session.save()
        sessions.append(session)

    def turn2(i: int):
        return http.post("/api/chat", data=json.dumps({"session_id": str(sessions[i].id), "message": "here you go",
                                                       "credentials": {}}),
                         content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {keys[i]}")

    _profiled("turn 2 web", args.calls, turn2, args.out)
    _profiled("poll session", args.calls, lambda i: http.get(f"/api/sessions/{sessions[i].id}",
                                                            HTTP_AUTHORIZATION=f"Bearer {keys[i]}"), args.out)
    print(f"profiles in {args.out}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
