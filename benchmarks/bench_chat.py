"""Master agent benchmark: the latency of one offline chat turn through HTTP (gunicorn, real database, bundled
catalogue), on requests of benchmarks/data/planner_requests.json (see first_turn_requests). Which servers the planner chooses is measured
by bench_planner_quality.py and bench_planner_livemcpbench.py. Prints figures only."""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, percentile, setup_django, web_service  # noqa: E402

DATABASE = "bench_chat"


def first_turn_requests(count: int) -> list[str]:
    """Requests whose first turn ends with the plan and a request for credentials, as a first turn for named
    services does. A plan needing no credentials goes on to create the agent in the same turn (no broker here: the
    task runs in the request), which bench_agents.py times; it is not part of this figure."""
    from agents_app.master.requirements import plan_requirements
    from agents_app.master.service import analyze_request

    chosen = []
    for item in json.loads((ROOT / "benchmarks" / "data" / "planner_requests.json").read_text())["requests"]:
        plan = analyze_request(request=item["request"])
        if plan.servers and plan_requirements(plan.server_slugs())["required_credentials"]:
            chosen.append(item["request"])
            if len(chosen) == count:
                break
    return chosen


def capability_requests(count: int) -> list[str]:
    """Requests naming no service: their first turn measures each clause's candidates' fit (one more embedding and
    query per clause) and may end with a question instead of a plan. As above, those whose plan would create the
    agent in the same turn (servers chosen, no credentials asked) are left out."""
    from agents_app.master.requirements import plan_requirements
    from agents_app.master.service import analyze_request

    chosen = []
    for item in json.loads((ROOT / "benchmarks" / "data" / "planner_requests.json").read_text())["requests"]:
        if not item["capability_only"]:
            continue
        plan = analyze_request(request=item["request"])
        if plan.questions or not plan.servers or plan_requirements(plan.server_slugs())["required_credentials"]:
            chosen.append(item["request"])
            if len(chosen) == count:
                break
    return chosen


def chat_latency(turns: int = 60) -> None:
    from mcpagent.services import api_client_create

    requests = first_turn_requests(turns + 4)
    capabilities = capability_requests(turns)
    _, key = api_client_create(name=f"bench-{time.time_ns()}")
    with web_service(DATABASE, key, timeout=30) as client:
        for warm in requests[:4]:  # each gunicorn worker loads the embedding model once
            client.post("/api/chat", json={"message": warm})
        first, follow = [], []
        for i in range(turns):
            started = time.perf_counter()
            response = client.post("/api/chat", json={"message": requests[4 + i % (len(requests) - 4)]})
            first.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            session_id = response.json()["session_id"]
            started = time.perf_counter()
            response = client.post("/api/chat", json={"message": "use Discord instead of Slack", "session_id": session_id})
            follow.append((time.perf_counter() - started) * 1000)
        capability_first = []
        for message in capabilities:
            started = time.perf_counter()
            response = client.post("/api/chat", json={"message": message})
            capability_first.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        every_first = first + capability_first
        print(f"offline chat turn through HTTP (gunicorn, 2 workers), {turns} sessions on requests of "
              "planner_requests.json whose plan asks for credentials (goal: first turn p95 ≤ 300 ms):")
        print(f"  first turn (analysis):   p50 {percentile(first, 50):.0f} ms   p95 {percentile(first, 95):.0f} ms")
        print(f"  follow-up turn:          p50 {percentile(follow, 50):.0f} ms   p95 {percentile(follow, 95):.0f} ms")
        print(f"  first turn, {len(capability_first)} requests naming only capabilities (fit measured, questions asked): "
              f"p50 {percentile(capability_first, 50):.0f} ms   p95 {percentile(capability_first, 95):.0f} ms")
        print(f"  every first turn ({len(every_first)}):  p50 {percentile(every_first, 50):.0f} ms   "
              f"p95 {percentile(every_first, 95):.0f} ms")


if __name__ == "__main__":
    setup_django(DATABASE)
    print(f"# bench_chat — load average at the start {os.getloadavg()[0]:.1f} (the machine may be shared)")
    print(f"# bench_chat — {time.strftime('%Y-%m-%d')} — {machine()}")
    chat_latency()
