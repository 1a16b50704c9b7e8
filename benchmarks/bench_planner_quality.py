"""Planner quality on requests written outside the planner's own vocabulary.

    .venv/bin/python benchmarks/bench_planner_quality.py [--show-misses] [--limit N]

Runs the planner itself (agents_app.master.service.analyze_request, the code behind `manage.py analyze --json` and
/api/chat; offline, ANTHROPIC_API_KEY is cleared) on every request of benchmarks/data/planner_requests.json, on its
own database (bench_planner) holding the bundled catalogue as `make run` loads it. Prints figures only.

The set was written before the planner's vocabulary came from the catalogue and without reading its lexicon; a
need is a regular expression over the chosen server's identity (slug, name, repository path), never a lexicon key,
so the planner is judged on which server it chose, not on which word it recognised. See the file's header.

Figures:
- requests with every need met (share): a need is met when a chosen server's identity matches its pattern, or,
  for a need marked `question_ok` (several services fit equally), when the plan asks the user a question;
- need recall: needs met / all needs;
- precision: chosen servers matching some need of the request / chosen servers;
- archived or tool-less servers chosen (goal 0): archived = repository under `servers-archived` or status not
  active (deprecated, hidden); tool-less = no known tools and no launch recipe;
- questions asked: plans whose `questions` list is not empty, when the planner's plan or reply carries one;
- analysis latency in process (p50 / p95 of analyze_request); the HTTP chat turn is timed by bench_chat.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, percentile, setup_django  # noqa: E402

DATABASE = "bench_planner"
DATA = ROOT / "benchmarks" / "data" / "planner_requests.json"
_HOST = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]+/", re.IGNORECASE)


def load_requests(path: Path = DATA) -> list[dict]:
    """The requests with each need's pattern compiled (case-insensitive) as `need["regex"]`."""
    requests = json.loads(path.read_text())["requests"]
    for item in requests:
        for need in item["needs"]:
            need["regex"] = re.compile(need["pattern"], re.IGNORECASE)
    return requests


def identity(slug: str, name: str, repository_url: str) -> tuple[str, str, str]:
    """What a need's pattern is matched against: the server's slug, name and repository path (owner/repo...)."""
    return slug or "", name or "", _HOST.sub("", repository_url or "")


def matches(regex: re.Pattern, server_identity: tuple[str, str, str]) -> bool:
    return any(regex.search(text) for text in server_identity)


def plan_questions(plan, reply: dict) -> list | None:
    """The questions the plan asks the user, or None when this planner has no such field (older plans)."""
    for source in (getattr(plan, "questions", None), reply.get("questions")):
        if source is not None:
            return list(source)
    return None


def server_facts(slugs: set[str]) -> dict[str, dict]:
    """Per chosen slug: is it archived/inactive, does it have tools, does it have a launch recipe."""
    from django.db.models import Count

    from registry_app.models import McpServer

    rows = McpServer.objects.filter(slug__in=slugs).annotate(
        n_tools=Count("tools", distinct=True), n_recipes=Count("launch_recipes", distinct=True)
    ).values("slug", "status", "repository_url", "n_tools", "n_recipes")
    return {
        row["slug"]: {
            "archived": row["status"] != McpServer.Status.ACTIVE or "servers-archived" in (row["repository_url"] or ""),
            "toolless": row["n_tools"] == 0 and row["n_recipes"] == 0,
        }
        for row in rows
    }


def evaluate(requests: list[dict], show_misses: bool) -> None:
    from agents_app.master.service import analysis_result, analyze_request

    for warm in requests[:3]:  # the embedding model and the lexicon load once per process
        analyze_request(request=warm["request"])
    timings, results = [], []
    for item in requests:
        started = time.perf_counter()
        plan = analyze_request(request=item["request"])
        timings.append((time.perf_counter() - started) * 1000)
        results.append((item, plan, analysis_result(plan)))

    facts = server_facts({s.slug for _, plan, _ in results for s in plan.servers})
    totals = {"all": [0, 0], "capability_only": [0, 0], "names_services": [0, 0]}  # [complete, requests]
    needs_total = needs_met = chosen = chosen_needed = 0
    archived, toolless = Counter(), Counter()  # slug -> times chosen
    questions_supported = False
    asked = asked_where_ok = asked_elsewhere = requests_with_question_ok = 0
    misses = []
    for item, plan, reply in results:
        questions = plan_questions(plan, reply)
        questions_supported |= questions is not None
        has_questions = bool(questions)
        question_ok = any(need["question_ok"] for need in item["needs"])
        requests_with_question_ok += question_ok
        asked += has_questions
        asked_where_ok += has_questions and question_ok
        asked_elsewhere += has_questions and not question_ok
        identities = [(s.slug, identity(s.slug, s.name, s.repository_url)) for s in plan.servers]
        unmet = []
        for need in item["needs"]:
            met = any(matches(need["regex"], ident) for _, ident in identities) or (need["question_ok"] and has_questions)
            needs_total += 1
            needs_met += met
            if not met:
                unmet.append(need["need"])
        for slug, ident in identities:
            chosen += 1
            chosen_needed += any(matches(need["regex"], ident) for need in item["needs"])
            archived[slug] += facts.get(slug, {}).get("archived", False)
            toolless[slug] += facts.get(slug, {}).get("toolless", False)
        group = "capability_only" if item["capability_only"] else "names_services"
        for key in ("all", group):
            totals[key][0] += not unmet
            totals[key][1] += 1
        if unmet:
            misses.append(f"  {item['id']} missed {unmet}: {item['request'][:110]!r}\n"
                          f"       chose {[slug for slug, _ in identities] or 'nothing'}")

    def share(pair: list[int]) -> str:
        return f"{pair[0] / max(pair[1], 1):.3f}  ({pair[0]}/{pair[1]})"

    services = {need["need"] for item in requests for need in item["needs"]}
    print(f"planner quality over {len(requests)} requests, {len(services)} distinct needs "
          f"(benchmarks/data/planner_requests.json; tuned on: nothing)")
    print(f"  requests with every need met:          {share(totals['all'])}")
    print(f"    requests naming services:            {share(totals['names_services'])}")
    print(f"    requests naming only capabilities:   {share(totals['capability_only'])}")
    print(f"  need recall (needs met / needs):       {needs_met / max(needs_total, 1):.3f}  ({needs_met}/{needs_total})")
    print(f"  precision (chosen servers matching a need / chosen): "
          f"{chosen_needed / max(chosen, 1):.3f}  ({chosen_needed}/{chosen})")
    for label, counter in (("archived or inactive", archived), ("tool-less (no tools, no launch recipe)", toolless)):
        chosen_slugs = sorted(slug for slug, times in counter.items() if times)
        print(f"  {label} servers chosen: {len(chosen_slugs)} servers, {sum(counter.values())} times  "
              f"{chosen_slugs[:10]}  (goal 0)")
    if questions_supported:
        print(f"  questions asked:                       {asked / len(results):.3f}  ({asked}/{len(results)}); "
              f"on requests with a question_ok need {asked_where_ok}/{requests_with_question_ok}, "
              f"on the others {asked_elsewhere}/{len(results) - requests_with_question_ok}")
    else:
        print("  questions asked:                       n/a (this planner's plans carry no `questions` list)")
    print(f"  analysis in process (analyze_request): p50 {percentile(timings, 50):.0f} ms   "
          f"p95 {percentile(timings, 95):.0f} ms   (HTTP chat turn: bench_chat.py; goal p95 ≤ 300 ms)")
    if show_misses:
        for line in misses:
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show-misses", action="store_true", help="List the requests with a need not met.")
    parser.add_argument("--limit", type=int, default=0, help="Only the first N requests (a quick look).")
    args = parser.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = ""  # the offline planner: deterministic, no model calls
    setup_django(DATABASE)
    print(f"# bench_planner_quality — {time.strftime('%Y-%m-%d')} — {machine()}")
    requests = load_requests()
    evaluate(requests[: args.limit] if args.limit else requests, args.show_misses)


if __name__ == "__main__":
    main()
