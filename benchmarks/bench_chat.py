"""Master agent benchmarks (issue 4): selection quality on our own multi-service requests, and the latency of one
offline chat turn through HTTP (gunicorn, real database, bundled catalogue). Prints figures only."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, percentile, setup_django, web_service  # noqa: E402

DATABASE = "bench_chat"


def selection_quality() -> None:
    from agents_app.master.lexicon import lexicon
    from agents_app.master.offline import server_matches
    from agents_app.master.service import analyze_request

    data = json.loads((ROOT / "benchmarks" / "data" / "workflow_requests.json").read_text())["requests"]
    by_key = lexicon().by_key
    complete = 0
    chosen_total = chosen_needed = 0
    misses = []
    for item in data:
        plan = analyze_request(request=item["request"])
        needed = [by_key[k] for k in item["needs"]]
        covered = {e.key for e in needed for s in plan.servers
                   if server_matches(e, slug=s.slug, name=s.name, repository_url=s.repository_url)}
        if covered == set(item["needs"]):
            complete += 1
        else:
            misses.append(f"  missed {sorted(set(item['needs']) - covered)} in: {item['request']}")
        for s in plan.servers:
            chosen_total += 1
            chosen_needed += any(server_matches(e, slug=s.slug, name=s.name, repository_url=s.repository_url)
                                 for e in needed)
    print(f"selection quality over {len(data)} multi-service requests (benchmarks/data/workflow_requests.json):")
    print(f"  every needed service chosen: {complete / len(data):.3f}  ({complete}/{len(data)})")
    print(f"  chosen servers that were needed (precision): {chosen_needed / max(chosen_total, 1):.3f}"
          f"  ({chosen_needed}/{chosen_total})")
    for line in misses:
        print(line)



def chat_latency(turns: int = 60) -> None:
    from mcpagent.services import api_client_create

    _, key = api_client_create(name=f"bench-{time.time_ns()}")
    with web_service(DATABASE, key, timeout=30) as client:
        requests = [r["request"] for r in json.loads(
            (ROOT / "benchmarks" / "data" / "workflow_requests.json").read_text())["requests"]]
        for warm in requests[:4]:  # each gunicorn worker loads the embedding model once
            client.post("/api/chat", json={"message": warm})
        first, follow = [], []
        for i in range(turns):
            started = time.perf_counter()
            response = client.post("/api/chat", json={"message": requests[i % len(requests)]})
            first.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            session_id = response.json()["session_id"]
            started = time.perf_counter()
            response = client.post("/api/chat", json={"message": "use Discord instead of Slack", "session_id": session_id})
            follow.append((time.perf_counter() - started) * 1000)
        print(f"offline chat turn through HTTP (gunicorn, 2 workers), {turns} sessions:")
        print(f"  first turn (analysis):   p50 {percentile(first, 50):.0f} ms   p95 {percentile(first, 95):.0f} ms")
        print(f"  follow-up turn:          p50 {percentile(follow, 50):.0f} ms   p95 {percentile(follow, 95):.0f} ms")


if __name__ == "__main__":
    setup_django(DATABASE)
    print(f"# bench_chat — {time.strftime('%Y-%m-%d')} — {machine()}")
    selection_quality()
    chat_latency()
