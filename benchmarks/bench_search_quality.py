"""Search quality: server-level Recall@1/5/10 and nDCG@5 on LiveMCPBench and MCP-Bench.

    .venv/bin/python benchmarks/bench_search_quality.py [--ablation] [--show-misses]

Each benchmark's server pool is loaded into a private database (bench_search_quality; dropped afterwards, so
this is safe to run next to the tests), indexed and embedded by the product code (refresh_search_fields,
server_embeddings_refresh: one vector per server and one per tool), and every query goes through
registry_app.selectors.server_search, the function behind the API and the search_servers command. Figures are
printed, nothing is asserted.

LiveMCPBench (../shared/benchmark/livemcpbench): query = `Question`; pool = the 70 servers of tools.json with their
name, description, category and tools (name + description). Ground truth: the tools named in
`Annotator Metadata.Tools`. Ambiguity rule: a tool name owned by several servers is satisfied by ANY of them; each
distinct owner set is one "need" (two tools of the same server are one need). Tool names found on no server (5
mentions) are ignored; tasks left with no need are skipped. Recall@K = share of a task's needs with an owner in
the top K. nDCG@K: binary gain for a result that satisfies a need not satisfied higher up; the ideal ranking
satisfies min(K, |needs|) needs first.

MCP-Bench (../shared/benchmark/mcp-bench): query = `fuzzy_description` (written not to name tools); ground truth =
the task's `servers` (1-3); pool = the 28 servers named in the task files. The snapshot carries no server
descriptions, so a server's document is its name plus the tool names that the explicit task descriptions attach
to it ("Paper Search:search_arxiv"), humanised. Those names come from the same files as the queries, but from
the other field (the fuzzy queries do not contain them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "bench_search_quality"

sys.path.insert(0, str(ROOT))
from tests.shared import SHARED  # noqa: E402  (MCPAGENT_SHARED_DIR, or ../shared found as the tests find it)

LIVEMCP = SHARED / "benchmark" / "livemcpbench"
MCPBENCH = SHARED / "benchmark" / "mcp-bench"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from dataclasses import replace  # noqa: E402

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils.text import slugify  # noqa: E402

from registry_app.embeddings import get_provider, query_cache  # noqa: E402
from registry_app.models import McpServer, ServerTool  # noqa: E402
from registry_app.search_index import refresh_search_fields, server_embeddings_refresh  # noqa: E402
from registry_app.selectors import DEFAULT_PARAMS, RankingParams, server_search  # noqa: E402

KS = (1, 5, 10)


# --------------------------------------------------------------------------------------------------------------
# Pools and tasks


def load_livemcpbench() -> tuple[list[dict], list[dict], dict]:
    servers_raw = json.loads((LIVEMCP / "tools.json").read_text())
    annotations = json.loads((LIVEMCP / "all_annotations.json").read_text())
    servers, owners = [], defaultdict(set)
    for entry in servers_raw:
        slug = slugify(entry["name"])[:190] or f"server-{len(servers)}"
        tools = {}
        for block in (entry.get("tools") or {}).values():
            for tool in block.get("tools") or []:
                tools.setdefault(tool["name"], tool.get("description") or "")
                owners[tool["name"]].add(slug)
        servers.append(
            {
                "slug": slug,
                "name": entry["name"],
                "description": entry.get("description") or "",
                "repository_url": entry.get("web") or "",
                "categories": [entry["category"]] if entry.get("category") else [],
                "tools": tools,
            }
        )
    tasks, stats = [], {"tasks": len(annotations), "unknown_tools": 0, "ambiguous_tools": 0, "skipped": 0}
    for item in annotations:
        names = [re.sub(r"^\s*\d+\.\s*", "", line).strip() for line in item["Annotator Metadata"]["Tools"].splitlines()]
        needs = set()
        for name in filter(None, names):
            if name not in owners:
                stats["unknown_tools"] += 1
                continue
            if len(owners[name]) > 1:
                stats["ambiguous_tools"] += 1
            needs.add(frozenset(owners[name]))
        if not needs:
            stats["skipped"] += 1
            continue
        tasks.append({"id": item["task_id"], "query": item["Question"], "needs": list(needs)})
    return servers, tasks, stats


def load_mcpbench() -> tuple[list[dict], list[dict], dict]:
    files = sorted(MCPBENCH.glob("mcpbench_tasks_*_runner_format.json"))
    groups = [group for f in files for group in json.loads(f.read_text())["server_tasks"]]
    names = set()
    for group in groups:
        names.update(group["servers"])
        for task in group["tasks"]:
            names.update(task.get("distraction_servers") or [])
    tools: dict[str, set[str]] = defaultdict(set)
    patterns = {name: re.compile(re.escape(name) + r":([A-Za-z][\w\-]*)") for name in names}
    for group in groups:
        for task in group["tasks"]:
            for name, pattern in patterns.items():
                tools[name].update(pattern.findall(task["task_description"]))
    servers = [
        {"slug": slugify(name), "name": name, "description": "", "repository_url": "", "categories": [],
         "tools": {tool: "" for tool in sorted(tools[name])}}
        for name in sorted(names)
    ]
    tasks = [
        {"id": task["task_id"], "query": task["fuzzy_description"],
         "needs": [frozenset([slugify(s)]) for s in group["servers"]]}
        for group in groups
        for task in group["tasks"]
    ]
    return servers, tasks, {"tasks": len(tasks), "servers": len(servers)}


def load_pool(servers: list[dict]) -> float:
    """Replace the catalogue of the bench database with `servers`; index and embed them. Returns seconds."""
    started = time.perf_counter()
    McpServer.objects.all().delete()
    created = McpServer.objects.bulk_create(
        McpServer(slug=s["slug"], name=s["name"], description=s["description"], repository_url=s["repository_url"],
                  categories=s["categories"])
        for s in servers
    )
    by_slug = {server.slug: server for server in created}
    ServerTool.objects.bulk_create(
        ServerTool(server=by_slug[s["slug"]], name=name[:300], description=description)
        for s in servers
        for name, description in s["tools"].items()
    )
    refresh_search_fields()
    server_embeddings_refresh(provider=get_provider(), only_stale=False, use_cache=False)
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------------------------
# Metrics


def score_task(ranked: list[str], needs: list[frozenset]) -> dict[str, float]:
    out = {}
    for k in KS:
        top = set(ranked[:k])
        out[f"R@{k}"] = sum(1 for need in needs if need & top) / len(needs)
    k = 5
    satisfied: set[frozenset] = set()
    dcg = 0.0
    for i, slug in enumerate(ranked[:k]):
        new = [need for need in needs if slug in need and need not in satisfied]
        if new:
            satisfied.update(new)
            dcg += 1 / math.log2(i + 2)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(needs))))
    out["nDCG@5"] = dcg / ideal
    return out


def evaluate(tasks: list[dict], params: RankingParams) -> tuple[dict[str, float], list[dict]]:
    totals: dict[str, float] = defaultdict(float)
    misses = []
    for task in tasks:
        # One LiveMCPBench question carries an 18 KB base64 image: cut to the API's limit, as a caller must.
        query = task["query"][: settings.SEARCH_MAX_QUERY_CHARS]
        hits = server_search(query=query, limit=10, params=params)
        ranked = [hit.server.slug for hit in hits]
        scores = score_task(ranked, task["needs"])
        for key, value in scores.items():
            totals[key] += value
        if scores["R@5"] < 1:
            misses.append({"id": task["id"], "query": task["query"][:160], "top5": ranked[:5],
                           "missing": [sorted(need) for need in task["needs"] if not need & set(ranked[:5])]})
    return {key: value / len(tasks) for key, value in totals.items()}, misses


def ablations(base: RankingParams) -> dict[str, RankingParams]:
    single = dict(split_clauses=False, implicit_needs=False)
    return {
        "product ranking": base,
        "dense only": replace(base, lexical_weight=0.0, name_boost=0.0, prior_weight=0.0, **single),
        "lexical only": replace(base, dense_weight=0.0, name_boost=0.0, prior_weight=0.0, **single),
        "hybrid, whole query only": replace(base, **single),
        "hybrid + clauses": replace(base, implicit_needs=False),
        "hybrid + implied needs": replace(base, split_clauses=False),
        "product, no name boost": replace(base, name_boost=0.0),
        "product, no quality prior": replace(base, prior_weight=0.0),
        "product, no tool matching": replace(base, tool_weight=0.0),
        "product, no standing rules": replace(base, test_listing_factor=1.0, usable_first=False),
    }


def report(title: str, tasks: list[dict], stats: dict, base: RankingParams, ablation: bool, show_misses: bool) -> None:
    print(f"\n{title}: {stats}")
    print(f"  {'variant':<28} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'nDCG@5':>7} {'ms/query':>9}")
    query_cache.clear()  # the first variant's time includes embedding the queries; the others reuse them
    for label, params in ablations(base).items() if ablation else [("product ranking", base)]:
        started = time.perf_counter()
        metrics, misses = evaluate(tasks, params)
        per_query = (time.perf_counter() - started) / len(tasks) * 1000
        print(f"  {label:<28} {metrics['R@1']:6.3f} {metrics['R@5']:6.3f} {metrics['R@10']:6.3f}"
              f" {metrics['nDCG@5']:7.3f} {per_query:9.1f}")
        if show_misses and params is base:
            for miss in misses:
                print(f"    miss {miss['id']}: {miss['query']!r}\n      top5 {miss['top5']}\n      missing {miss['missing']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ablation", action="store_true", help="Also score ranking variants (dense only, ...).")
    parser.add_argument("--show-misses", action="store_true", help="List tasks whose needs are not all in the top 5.")
    parser.add_argument("--only", choices=["livemcpbench", "mcpbench"], help="Run one benchmark.")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="Override a RankingParams field for this run (e.g. --param name_boost=0); the default is the product's.",
    )
    args = parser.parse_args()
    base = DEFAULT_PARAMS
    for item in args.param:
        key, _, value = item.partition("=")
        current = getattr(base, key)
        base = replace(base, **{key: (value.lower() in ("1", "true")) if isinstance(current, bool) else type(current)(value)})
    if args.param:
        print(f"ranking parameters: {base}")

    provider = get_provider()
    connection.settings_dict["TEST"]["NAME"] = DB_NAME
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        print(f"embedding provider {provider.name} ({provider.dims} dims); database {DB_NAME}")
        if args.only in (None, "livemcpbench"):
            servers, tasks, stats = load_livemcpbench()
            seconds = load_pool(servers)
            stats["servers"] = len(servers)
            print(f"LiveMCPBench pool loaded, indexed and embedded in {seconds:.1f} s")
            report("LiveMCPBench", tasks, stats, base, args.ablation, args.show_misses)
        if args.only in (None, "mcpbench"):
            servers, tasks, stats = load_mcpbench()
            load_pool(servers)
            report("MCP-Bench (fuzzy descriptions)", tasks, stats, base, args.ablation, args.show_misses)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
