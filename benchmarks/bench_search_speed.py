"""Search speed: p50/p95 of one search (query embedding included) over the bundled catalogue and over 100,000
synthetic servers; embedding throughput; HNSW recall against exact search; load times.

    .venv/bin/python benchmarks/bench_search_speed.py [--size 100000] [--keep] [--skip-synthetic]

Private databases (bench_search_speed, bench_search_speed_100k), so it is safe next to the tests. Figures are
printed, nothing is asserted. Every timed search starts with an empty query-vector cache, so the query embedding
is always included.

The synthetic servers are made from the bundled catalogue: server i copies the name (plus a number), categories and
tools of catalogue server i mod N and appends half of another server's description; its vector is
normalise(v[i mod N] + 0.35 v[j] + 0.05 noise), from the real vectors of those two texts, and each tool's is its
catalogue tool's vector plus noise (searches include tool-level matching). Rows go in with COPY;
then refresh_search_fields indexes the text, the HNSW index is built and the tables are vacuumed, all timed.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from mcpagent.env import environ_for_own_process  # noqa: E402
from registry_app.embeddings import get_provider, query_cache  # noqa: E402
from registry_app.models import McpServer, ServerEmbedding, ToolEmbedding  # noqa: E402
from registry_app.search_index import (  # noqa: E402
    TOOLS,
    embedding_expression,
    ensure_embedding_index,
    refresh_search_fields,
    vector_literal,
    vector_type,
)
from registry_app.selectors import name_index, server_search  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import percentile  # noqa: E402

QUERIES = [
    "send a slack message", "read my gmail", "create a notion page", "list open issues in my github repository",
    "query my postgres database", "what's the weather in Paris tomorrow", "search the web for recent news",
    "translate this text to french", "generate an image from a prompt", "manage kubernetes pods",
    "post a tweet", "upload a file to S3", "create a jira ticket for this bug", "summarise a youtube video",
    "book a meeting in google calendar", "check my stripe payments", "scrape a website and save it as markdown",
    "run a sql query on sqlite", "send an email with an attachment", "find flights from london to rome",
    "get the current bitcoin price", "read a pdf and extract tables", "control spotify playback",
    "deploy to vercel", "analyse a csv file with pandas", "take a screenshot of a web page",
    "monitor my server logs in datadog", "create a trello card", "search arxiv papers about transformers",
    "convert a word document to pdf", "find trending github repositories and post them to slack",
    "remember facts about me across chats", "automate the browser to fill a form", "get stock prices for apple",
    "send a telegram message to my group", "create a figma design", "manage my todoist tasks",
    "look up a wikipedia article", "query elasticsearch", "open a pull request on gitlab",
    "transcribe an audio file", "get directions with google maps", "send an SMS with twilio",
    "read messages from discord", "list files in my google drive", "shorten a url", "check domain whois",
    "generate a chart from data", "fetch a web page and summarise it", "run python code in a sandbox",
]


def timed_searches(rounds: int = 3) -> list[float]:
    server_search(query="warm up the model and the name index", limit=10)
    times = []
    for r in range(rounds):
        for q in QUERIES:
            query_cache.clear()
            started = time.perf_counter()
            server_search(query=q if r == 0 else f"{q} please" if r == 1 else f"I want to {q}", limit=10)
            times.append((time.perf_counter() - started) * 1000)
    return times


def report_latency(label: str, times: list[float]) -> None:
    print(f"  {label}: p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms, "
          f"max {max(times):.1f} ms over {len(times)} searches")


def hnsw_recall(k: int = 10, ef_values: tuple[int, ...] = (40, 100, 200)) -> None:
    """Recall of the HNSW top-k against exact search, and the dense query's own time, per ef_search."""
    provider = get_provider()
    vectors = provider.embed(QUERIES)
    expr = f"{embedding_expression(provider.dims, alias='e')} <=> %s::{vector_type(provider.dims)}"
    sql = f"SELECT e.server_id FROM registry_app_serverembedding e WHERE e.model = %s ORDER BY {expr} LIMIT {k}"
    for ef in ef_values:
        hits, total, times = 0, 0, []
        for vector in vectors:
            literal = vector_literal(vector)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
                started = time.perf_counter()
                cursor.execute(sql, [provider.name, literal])
                approx = {row[0] for row in cursor.fetchall()}
                times.append((time.perf_counter() - started) * 1000)
                cursor.execute("SET LOCAL enable_indexscan = off")
                cursor.execute(sql, [provider.name, literal])
                exact = {row[0] for row in cursor.fetchall()}
            hits += len(approx & exact)
            total += len(exact)
        print(f"  HNSW ef_search={ef}: recall@{k} {hits / total:.3f} vs exact; dense query p50 "
              f"{percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms")


def use_database(name: str, keep: bool) -> str:
    """Switch the connection to a private database (created, migrated). Returns the previous name."""
    connection.settings_dict["TEST"]["NAME"] = name
    old = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=not keep, serialize=False, keepdb=keep)
    return old


def bench_catalogue(keep: bool) -> dict:
    print("\nBundled catalogue (config/servers.json)")
    started = time.perf_counter()
    if not McpServer.objects.exists():
        call_command("load_default_catalogue", verbosity=0)
    load_seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    count = McpServer.objects.count()
    print(f"  {count} servers loaded (import + embeddings from the shipped cache) in {load_seconds:.1f} s; "
          f"peak RSS of this process {peak_mb:.0f} MB")
    name_index.clear()
    started = time.perf_counter()
    name_index.get()
    print(f"  name index built in {(time.perf_counter() - started) * 1000:.0f} ms (once per process)")
    report_latency("one search (embedding included)", timed_searches())
    hnsw_recall()

    provider = get_provider()
    docs = list(McpServer.objects.order_by("id").values_list("search_document", flat=True)[:256])
    provider.embed(docs[:8])
    started = time.perf_counter()
    provider.embed(docs)
    doc_rate = len(docs) / (time.perf_counter() - started)
    query_times = []
    for q in QUERIES:
        started = time.perf_counter()
        provider.embed([q])
        query_times.append((time.perf_counter() - started) * 1000)
    print(f"  embedding throughput ({provider.name}): {doc_rate:.0f} server documents/s (batches of 32); "
          f"one query p50 {percentile(query_times, 50):.1f} ms")

    rows = list(
        McpServer.objects.order_by("id").values_list("id", "name", "description", "categories", "repository_url")
    )
    vectors = dict(ServerEmbedding.objects.filter(model=provider.name).values_list("server_id", "embedding"))
    tools_of: dict[int, list[tuple[str, str, int]]] = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT server_id, name, left(description, 200), id FROM registry_app_servertool")
        for sid, name, description, tool_id in cursor.fetchall():
            tools_of.setdefault(sid, []).append((name, description, tool_id))
    tool_vectors = {
        tool_id: np.asarray(vector, dtype=np.float32)
        for tool_id, vector in ToolEmbedding.objects.filter(model=provider.name).values_list("tool_id", "embedding")
    }
    return {"rows": rows, "vectors": vectors, "tools_of": tools_of, "tool_vectors": tool_vectors}


def generate_synthetic(size: int, source: dict) -> None:
    provider = get_provider()
    rows = [r for r in source["rows"] if r[0] in source["vectors"]]
    base = np.array([np.asarray(source["vectors"][r[0]], dtype=np.float32) for r in rows])
    rng = random.Random(7)
    noise = np.random.default_rng(7)
    tools_of, tool_vectors = source["tools_of"], source["tool_vectors"]

    started = time.perf_counter()
    McpServer.objects.all().delete()
    raw = connection.connection  # psycopg connection: COPY
    with transaction.atomic():
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY registry_app_mcpserver (id, slug, name, description, repository_url, homepage, categories, license,"
                " status, verified, featured, official, popularity, curated_fields, search_document, content_hash,"
                " first_seen, last_seen, updated_at) FROM STDIN"
            ) as copy:
                for i in range(size):
                    sid, name, description, categories, repo = rows[i % len(rows)]
                    other = rows[rng.randrange(len(rows))][2]
                    copy.write_row((
                        i + 1, f"synthetic-{i}", f"{name} {i // len(rows)}",
                        f"{description} {other[: len(other) // 2]}", f"{repo}-{i}" if repo else "", "",
                        categories, "", "active", False, False, i < 200, rng.random() * 0.5, [], "", "",
                        "2026-01-01", "2026-01-01", "2026-01-01",
                    ))
            # Each synthetic tool copies a catalogue tool and gets that tool's vector plus noise.
            tool_sources: list[int] = []
            with cursor.copy("COPY registry_app_servertool (id, server_id, name, description, source) FROM STDIN") as copy:
                for i in range(size):
                    for name, description, source_tool in tools_of.get(rows[i % len(rows)][0], []):
                        tool_sources.append(source_tool)
                        copy.write_row((len(tool_sources), i + 1, name, description, "synthetic"))
            with cursor.copy(
                "COPY registry_app_toolembedding (tool_id, model, dims, embedding, content_hash, created_at) FROM STDIN"
            ) as copy:
                for tool_id, source_tool in enumerate(tool_sources, start=1):
                    vector = tool_vectors.get(source_tool)
                    if vector is None:
                        continue
                    vector = vector + 0.05 * noise.standard_normal(vector.shape).astype(np.float32)
                    copy.write_row((tool_id, provider.name, provider.dims, vector_literal(vector / np.linalg.norm(vector)),
                                    "", "2026-01-01"))
            with cursor.copy(
                "COPY registry_app_serverembedding (server_id, model, dims, embedding, content_hash, created_at)"
                " FROM STDIN"
            ) as copy:
                for start in range(0, size, 5000):
                    idx = np.arange(start, min(size, start + 5000))
                    mixed = base[idx % len(rows)] + 0.35 * base[noise.integers(0, len(rows), len(idx))]
                    mixed += 0.05 * noise.standard_normal(mixed.shape).astype(np.float32)
                    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
                    for i, vector in zip(idx, mixed):
                        copy.write_row((int(i) + 1, provider.name, provider.dims, vector_literal(vector), "", "2026-01-01"))
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('registry_app_mcpserver', 'id'), %s)", [size])
            cursor.execute("SELECT setval(pg_get_serial_sequence('registry_app_servertool', 'id'), %s)",
                           [max(1, len(tool_sources))])
    print(f"  {size} servers, {len(tool_sources)} tools and their vectors written with COPY in "
          f"{time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    refresh_search_fields()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE registry_app_serverembedding e SET content_hash = s.content_hash"
            " FROM registry_app_mcpserver s WHERE s.id = e.server_id"
        )
    print(f"  refresh_search_fields (documents, hashes, tsvectors) in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        ensure_embedding_index(model=provider.name, dims=provider.dims)
        ensure_embedding_index(model=provider.name, dims=provider.dims, kind=TOOLS)
    print(f"  HNSW indexes (servers, tools) built in {time.perf_counter() - started:.1f} s")

    # refresh_search_fields rewrote every row: without this the searches below would run while autovacuum
    # clears 100,000 dead rows, which measures the hour after a bulk load, not the catalogue people search.
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in ("registry_app_mcpserver", "registry_app_serverembedding", "registry_app_servertool",
                      "registry_app_toolembedding"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("CHECKPOINT")  # and the gigabyte of WAL written above is flushed now, not during the searches
    print(f"  VACUUM ANALYZE and CHECKPOINT in {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="Synthetic servers (default 100,000).")
    parser.add_argument("--keep", action="store_true", help="Keep the bench databases and reuse them next time.")
    parser.add_argument("--skip-synthetic", action="store_true", help="Only the bundled catalogue.")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        return measure_only()
    provider = get_provider()
    print(f"embedding provider {provider.name}; {os.cpu_count()} cores; "
          f"ef_search {django.conf.settings.SEARCH_HNSW_EF_SEARCH}")

    old = use_database("bench_search_speed", args.keep)
    try:
        source = bench_catalogue(args.keep)
    finally:
        connection.creation.destroy_test_db(old, verbosity=0, keepdb=args.keep)
    if args.skip_synthetic:
        return

    print(f"\n{args.size:,} synthetic servers")
    old = use_database(f"bench_search_speed_{args.size // 1000}k", args.keep)
    try:
        if McpServer.objects.count() != args.size:
            generate_synthetic(args.size, source)
        else:
            print("  reusing the kept database")
        # Searches are timed in a fresh process, as a web worker runs them (not in the one that just wrote
        # 100,000 rows and built an index).
        sys.stdout.flush()
        env = dict(environ_for_own_process(), MCPAGENT_DB_NAME=connection.settings_dict["NAME"])
        code = subprocess.call([sys.executable, __file__, "--measure-only"], env=env)
        if code:
            sys.exit(code)
    finally:
        connection.creation.destroy_test_db(old, verbosity=0, keepdb=args.keep)


def measure_only() -> None:
    """Search latency and HNSW recall over the database MCPAGENT_DB_NAME names."""
    name_index.clear()
    started = time.perf_counter()
    name_index.get()
    print(f"  name index built in {(time.perf_counter() - started) * 1000:.0f} ms (once per process)")
    times = timed_searches()
    report_latency("one search (embedding included)", times)
    print(f"  mean {statistics.mean(times):.1f} ms")
    hnsw_recall()


if __name__ == "__main__":
    main()
