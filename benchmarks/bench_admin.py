"""Staff pages on a production-sized catalogue: the server list (plain, searched, page of 100), a server's change
page and the dashboard, with the bundled catalogue (6,000 servers) and a synthetic history of agents, runs and
chat plans. Prints p50/p95 and the number of SQL queries of each page; nothing is asserted.

    .venv/bin/python benchmarks/bench_admin.py [--agents 5000] [--repeat 10]

Private database (bench_admin), so it is safe next to the tests. The history: `--agents` agents spread over the
last 90 days, each configured with 1-3 catalogue servers (popular servers more often), a validation result per
server (1 in 8 fails), 0-3 runs each (1 in 6 fails), and a chat session with a plan for 3 agents in 4.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import setup_django  # noqa: E402

DATABASE = "bench_admin"


def build_history(n_agents: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from agents_app.models import Agent, AgentRun
    from mcpagent.services import api_client_create
    from registry_app.models import McpServer
    from sessions_app.models import Session

    if Agent.objects.count() >= n_agents:
        return
    Agent.objects.all().delete()
    Session.objects.all().delete()
    rng = random.Random(7)
    slugs = list(McpServer.objects.order_by("-popularity").values_list("slug", flat=True)[:800])
    weights = [1 / (rank + 5) for rank in range(len(slugs))]
    client, _ = api_client_create(name=f"bench-admin-{time.time():.0f}")
    now = timezone.now()
    sessions, agents, runs = [], [], []
    for i in range(n_agents):
        chosen = list(dict.fromkeys(rng.choices(slugs, weights, k=rng.randint(1, 3))))
        created = now - timedelta(days=rng.random() * 90)  # the validation time in progress
        session = None
        if i % 4:
            session = Session(client=client, context={"plan": {
                "needs": [{"key": slug.split("-")[0], "name": slug, "kind": "service", "phrase": ""} for slug in chosen],
                "servers": [{"need": slug, "slug": slug, "name": slug, "repository_url": "", "confidence": 1.0,
                             "reason": ""} for slug in chosen]}})
            sessions.append(session)
        ok = {slug: rng.random() > 0.125 for slug in chosen}
        agents.append(Agent(
            client=client, session=session, status="ready" if all(ok.values()) else "failed", name=f"agent {i}",
            mcp_config={"mcpServers": {f"s{j}": {"command": "uvx", "args": [slug], "catalogue": slug}
                                       for j, slug in enumerate(chosen)}},
            metadata={"validation": {"servers": {f"s{j}": {"ok": ok[slug]} for j, slug in enumerate(chosen)}}},
            progress=[{"at": created.isoformat(), "step": "server_ok" if ok[slug] else "server_failed",
                       "server": f"s{j}", "detail": ""} for j, slug in enumerate(chosen)],
        ))
    Session.objects.bulk_create(sessions, batch_size=1000)
    Agent.objects.bulk_create(agents, batch_size=1000)
    for agent in agents:
        for _ in range(rng.randint(0, 3)):
            runs.append(AgentRun(agent=agent, status="failed" if rng.random() < 1 / 6 else "succeeded",
                                 message="go", model="passthrough"))
    AgentRun.objects.bulk_create(runs, batch_size=2000)
    # Spread creation over the period (auto_now_add set them all to now); runs an hour after their agent.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Agent._meta.db_table} SET created_at = now() - (random() * interval '90 days')")
        cursor.execute(f"UPDATE {AgentRun._meta.db_table} r SET created_at = a.created_at + interval '1 hour' "
                       f"FROM {Agent._meta.db_table} a WHERE a.id = r.agent_id")
        cursor.execute("ANALYZE")
    print(f"(history: {len(agents)} agents, {len(sessions)} chat plans, {len(runs)} runs)")


def timed(client, url: str, params: dict, repeat: int) -> tuple[float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries = len(captured)
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)], queries


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    setup_django(DATABASE)
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from registry_app.models import McpServer

    build_history(args.agents)
    user, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True,
                                                                                          "is_superuser": True})
    client = Client()
    client.force_login(user)
    big = McpServer.objects.order_by("-popularity").first()
    pages = [
        ("server list, page of 100", reverse("admin:registry_app_mcpserver_changelist"), {}),
        ("server list, search 'slack'", reverse("admin:registry_app_mcpserver_changelist"), {"q": "slack"}),
        ("server list, search 'send an email when a github issue opens'",
         reverse("admin:registry_app_mcpserver_changelist"), {"q": "send an email when a github issue opens"}),
        (f"server change page ({big.slug})", reverse("admin:registry_app_mcpserver_change", args=[big.pk]), {}),
        ("dashboard, 30 days", reverse("admin-dashboard"), {"days": 30}),
        ("dashboard, 365 days", reverse("admin-dashboard"), {"days": 365}),
    ]
    client.get(pages[1][1], pages[1][2])  # load the embedding model once
    print(f"{McpServer.objects.count()} servers; {args.repeat} requests each through the Django test client")
    for title, url, params in pages:
        p50, p95, queries = timed(client, url, params, args.repeat)
        print(f"{title}: p50 {p50:.0f} ms, p95 {p95:.0f} ms, {queries} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
