"""The planner on LiveMCPBench: task -> plan -> chosen servers, compared with the servers the annotators used.

    .venv/bin/python benchmarks/bench_planner_livemcpbench.py [--show-misses]

The candidate pool is the benchmark's own 70 servers (../shared/benchmark/livemcpbench/tools.json), loaded,
indexed and embedded into a private database (bench_planner_livemcp, recreated on every run) by the same code as
bench_search_quality.py (load_livemcpbench, load_pool); no other catalogue server exists there. Every task's
`Question` goes through agents_app.master.service.analyze_request (the code behind `manage.py analyze --json` and
/api/chat; offline, ANTHROPIC_API_KEY is cleared), cut to CHAT_MAX_MESSAGE_CHARS as the chat API would.

Ground truth and ambiguity rule as in bench_search_quality.py: the tools named in `Annotator Metadata.Tools`; a
tool owned by several servers is satisfied by ANY of them; each distinct owner set is one annotated need; tools
found on no server are ignored and tasks left with no need skipped. Figures: share of tasks whose annotated needs
were all chosen, share with at least one chosen, mean recall (needs chosen / needs), precision (chosen servers
that satisfy a need / chosen). Nothing here was tuned on these tasks. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, percentile, setup_django  # noqa: E402

DATABASE = "bench_planner_livemcp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show-misses", action="store_true", help="List the tasks with an annotated need not chosen.")
    args = parser.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = ""  # the offline planner: deterministic, no model calls
    setup_django(DATABASE, load_catalogue=False, fresh=True)
    from bench_search_quality import load_livemcpbench, load_pool
    from django.conf import settings

    from agents_app.master.service import analyze_request

    print(f"# bench_planner_livemcpbench — {time.strftime('%Y-%m-%d')} — {machine()}")
    servers, tasks, stats = load_livemcpbench()
    seconds = load_pool(servers)
    print(f"LiveMCPBench pool: {len(servers)} servers loaded, indexed and embedded into {DATABASE} in {seconds:.1f} s; "
          f"{stats}")

    all_chosen = any_chosen = 0
    recall_sum = 0.0
    chosen_total = chosen_needed = 0
    timings, misses = [], []
    for task in tasks:
        started = time.perf_counter()
        plan = analyze_request(request=task["query"][: settings.CHAT_MAX_MESSAGE_CHARS])
        timings.append((time.perf_counter() - started) * 1000)
        chosen = set(plan.server_slugs())
        needs = task["needs"]
        met = [need for need in needs if need & chosen]
        all_chosen += len(met) == len(needs)
        any_chosen += bool(met)
        recall_sum += len(met) / len(needs)
        chosen_total += len(chosen)
        chosen_needed += sum(1 for slug in chosen if any(slug in need for need in needs))
        if len(met) < len(needs):
            misses.append(f"  {task['id']}: {task['query'][:120]!r}\n"
                          f"     chose {sorted(chosen) or 'nothing'}; missing "
                          f"{[sorted(need) for need in needs if not need & chosen]}")

    n = len(tasks)
    print(f"planner on LiveMCPBench ({n} tasks with annotated servers, pool = the benchmark's {len(servers)} servers; "
          "tuned on: nothing)")
    print(f"  tasks with every annotated server chosen: {all_chosen / n:.3f}  ({all_chosen}/{n})")
    print(f"  tasks with at least one chosen:           {any_chosen / n:.3f}  ({any_chosen}/{n})")
    print(f"  mean recall (annotated needs chosen):     {recall_sum / n:.3f}")
    print(f"  precision (chosen servers annotated):     {chosen_needed / max(chosen_total, 1):.3f}"
          f"  ({chosen_needed}/{chosen_total}); {chosen_total / n:.2f} servers per plan")
    print(f"  analysis in process: p50 {percentile(timings, 50):.0f} ms   p95 {percentile(timings, 95):.0f} ms")
    if args.show_misses:
        for line in misses:
            print(line)


if __name__ == "__main__":
    main()
