"""Import benchmark (issue 3): load the bundled catalogue (config/servers.json) into a fresh database and print
wall times and peak memory. The database `bench_import` is created on the embedded server and dropped after.

    python benchmarks/bench_import.py [--no-embed]

Figures: reading + merging + writing + search-field refresh (what `load_default_catalogue` does before
embeddings), the idempotent re-import, then `embed_servers --stale` (the rest of a first start).
"""

import argparse
import io
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, setup_django  # noqa: E402

DATABASE = "bench_import"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-embed", action="store_true", help="Skip the embedding step.")
    args = parser.parse_args()
    setup_django(DATABASE, load_catalogue=False, fresh=True)
    from django.core.management import call_command, get_commands
    from django.db import connection

    from registry_app.importers import read_catalogue
    from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer, ServerTool
    from registry_app.services import catalogue_import

    path = ROOT / "config" / "servers.json"
    print(machine())
    print(f"catalogue: {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:.1f} MB)")
    baseline = peak_rss_mb()
    started = time.perf_counter()
    batch = read_catalogue(path, "native")
    read_s = time.perf_counter() - started
    result = catalogue_import(records=batch.records)
    import_s = time.perf_counter() - started
    print(f"import into an empty database: {import_s:.1f} s wall ({read_s:.1f} s reading), "
          f"{result.created} servers, {ServerTool.objects.count()} tools, "
          f"{CredentialRequirement.objects.count()} credential requirements, {LaunchRecipe.objects.count()} recipes")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (Django and libraries alone: {baseline:.0f} MB)")
    started = time.perf_counter()
    again = catalogue_import(records=read_catalogue(path, "native").records)
    print(f"re-import (nothing changed): {time.perf_counter() - started:.1f} s wall, "
          f"{again.created} created, {again.updated} updated, {again.unchanged} unchanged")
    if not args.no_embed and "embed_servers" in get_commands():
        started = time.perf_counter()
        call_command("embed_servers", stale=True, stdout=io.StringIO())
        embed_s = time.perf_counter() - started
        print(f"embed_servers --stale: {embed_s:.1f} s wall; first start total (import + embeddings): "
              f"{import_s + embed_s:.1f} s for {McpServer.objects.count()} servers")
        print(f"peak RSS after embeddings: {peak_rss_mb():.0f} MB")
    connection.close()
    import psycopg

    with psycopg.connect(host=connection.settings_dict["HOST"], user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    main()
