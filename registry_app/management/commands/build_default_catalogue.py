"""python manage.py build_default_catalogue [--shared PATH] [--output config/servers.json]

Builds the catalogue the product ships (config/servers.json, native format) from the four shared snapshots,
merged and deduplicated offline with the same rules as the database import, plus CATALOGUE_NOTICE.md with
the sources' licences. Run it when the snapshots change and commit both files: the product itself never
reads ../shared.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry_app.importers import SourceError, read_catalogue
from registry_app.importers.common import ServerRecord, pypi_name
from registry_app.importers.merge import MergePlanner, merge_records, popularity
from registry_app.importers.native import entry_from_record, record_from_entry, write

MIN_SERVERS = 4000

# Where each snapshot came from (see ../shared/catalogue/README.md); every one is MIT-licensed.
SOURCES: list[dict[str, str]] = [
    {
        "name": "official",
        "format": "official",
        "path": "official-registry/production_servers.json",
        "title": "Official MCP Registry (server.json dump, fetched 2025-09-30)",
        "repository": "https://github.com/modelcontextprotocol/registry (dump committed in the fork "
                      "ironsteadlabs/registry, scripts/mirror_data/production_servers.json)",
        "commit": "4335162650ca5a55004e21cf5546205188f47372",
        "license": "MIT",
        "copyright": "Copyright (c) MCP Contributors",
    },
    {
        "name": "docker",
        "format": "docker",
        "path": "docker-mcp-registry",
        "title": "Docker MCP Catalog (servers/*/server.yaml, tools.json)",
        "repository": "https://github.com/docker/mcp-registry",
        "commit": "818bf169b365e7b7d5b117352e32757c54844718",
        "license": "MIT",
        "copyright": "Copyright (c) 2025 Docker",
    },
    {
        "name": "toolsdk",
        "format": "toolsdk",
        "path": "toolsdk-mcp-registry",
        "title": "toolsdk MCP Registry (packages/**.json, indexes/*.json)",
        "repository": "https://github.com/toolsdk-ai/toolsdk-mcp-registry",
        "commit": "4bfe8262c554f8fb866b48cce910dd6ba20eece1",
        "license": "MIT",
        "copyright": "Copyright (c) 2025 Kelly Peilin Chan",
    },
    {
        "name": "awesome",
        "format": "awesome",
        "path": "punkpeye-awesome-mcp-servers/README.md",
        "title": "awesome-mcp-servers (README.md)",
        "repository": "https://github.com/punkpeye/awesome-mcp-servers",
        "commit": "81a968613a69fed6dc6a247f43310ce7c7b611e0",
        "license": "MIT",
        "copyright": "Copyright (c) 2024 Frank Fiegel",
    },
]

MIT_TEXT = """Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do so, subject to the following
conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED
TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL
THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE."""


def merge_offline(records: list[ServerRecord]) -> list[ServerRecord]:
    """Cluster records with the database import's rules (MergePlanner) and merge each cluster."""
    planner = MergePlanner()
    clusters: list[list[ServerRecord]] = []
    by_source: dict[str, list[ServerRecord]] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    # Sources in the order given, each as one batch: the same ambiguity rules as importing them one by one.
    for batch in by_source.values():
        ambiguous = MergePlanner.ambiguous_keys(batch)
        for record in batch:
            keys = record.merge_keys()
            cluster = planner.find(record, keys, ambiguous)
            if cluster is None:
                cluster = len(clusters)
                clusters.append([])
            clusters[cluster].append(record)
            planner.add(cluster, record.source, keys)
    return [merge_records(cluster) for cluster in clusters]


def assign_slugs(servers: list[ServerRecord]) -> None:
    """Unique slugs; on a collision the more popular server keeps the plain one."""
    taken: set[str] = set()
    for server in sorted(servers, key=lambda s: (-popularity(s), s.slug, s.source_id)):
        base = server.slug or "server"
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        server.slug = slug
        taken.add(slug)


def apply_corrections(servers: list[ServerRecord], path: Path) -> int:
    """Apply config/catalogue_corrections.json (facts the sources get wrong, each with its reason) to the merged
    servers, so that a rebuild keeps them. A field set to null is removed. Returns how many servers changed."""
    if not path.exists():
        return 0
    corrections = json.loads(path.read_text(encoding="utf-8"))["corrections"]
    by_slug = {server.slug: i for i, server in enumerate(servers)}
    missing = sorted(set(corrections) - set(by_slug))
    if missing:
        raise CommandError(f"{path.name} corrects servers the snapshots no longer have: {', '.join(missing)}")
    for slug, fields in corrections.items():
        i = by_slug[slug]
        entry = entry_from_record(servers[i])
        for key, value in fields.items():
            if key == "why":
                continue
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
        warnings: list[str] = []
        servers[i] = record_from_entry(entry, f"{path.name}#{slug}", warnings)
    return len(corrections)


def drop_missing_packages(servers: list[ServerRecord], path: Path) -> int:
    """Remove the launch recipes whose PyPI package does not exist (config/package_checks.json, written by
    check_catalogue_packages). Returns how many recipes were removed."""
    if not path.exists():
        return 0
    missing = set(json.loads(path.read_text(encoding="utf-8")).get("pypi_missing", []))
    dropped = 0
    for server in servers:
        kept = [r for r in server.launch if not (r.kind == "pypi" and pypi_name(r.identifier) in missing)]
        dropped += len(server.launch) - len(kept)
        server.launch = kept
    return dropped


def notice_text(counts: dict[str, int], total: int) -> str:
    lines = [
        "# Default catalogue: sources and licences",
        "",
        "`config/servers.json` is generated by `python manage.py build_default_catalogue` from the snapshots",
        "below: each server entry was normalised, merged across sources on its repository URL / package /",
        "registry name, and records which source entries it came from (`sources`). Descriptions and other",
        "texts are the sources' own. Every source is distributed under the MIT licence; its copyright notice",
        "and the licence text follow. The `license` field of a server entry is the licence of that server's",
        "code as the source states it, not of this data.",
        "",
        f"Servers in the catalogue: {total:,}.",
        "",
    ]
    for source in SOURCES:
        lines += [
            f"## {source['title']}",
            "",
            f"- Repository: {source['repository']}",
            f"- Commit: `{source['commit']}`",
            f"- Entries used: {counts.get(source['name'], 0):,}",
            f"- Licence: {source['license']}. {source['copyright']}",
            "",
        ]
    lines += ["## MIT licence (applies to each source above, with its copyright notice)", "", MIT_TEXT, ""]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Build config/servers.json (merged default catalogue) and CATALOGUE_NOTICE.md from the shared snapshots."

    def add_arguments(self, parser):
        parser.add_argument("--shared", default=str(Path(settings.BASE_DIR).parent / "shared" / "catalogue"),
                            help="Folder holding the four snapshots (default: ../shared/catalogue).")
        parser.add_argument("--output", default=str(Path(settings.BASE_DIR) / "config" / "servers.json"))
        parser.add_argument("--notice", default="", help="Default: CATALOGUE_NOTICE.md beside --output.")

    def handle(self, *args, shared: str, output: str, notice: str, **options):
        started = time.monotonic()
        root = Path(shared)
        if not root.is_dir():
            raise CommandError(f"{root} is not a folder; pass --shared PATH (the folder with the four snapshots)")
        records: list[ServerRecord] = []
        counts: dict[str, int] = {}
        for source in SOURCES:
            try:
                batch = read_catalogue(root / source["path"], source["format"])
            except SourceError as exc:
                raise CommandError(str(exc)) from None
            counts[source["name"]] = len(batch.records)
            skipped = len(batch.skipped)
            self.stdout.write(f"{source['name']}: {len(batch.records)} records, {skipped} skipped"
                              + (f" ({'; '.join(batch.notes)})" if batch.notes else ""))
            records += batch.records
        servers = merge_offline(records)
        assign_slugs(servers)
        servers.sort(key=lambda s: s.slug)
        dropped = drop_missing_packages(servers, Path(settings.BASE_DIR) / "config" / "package_checks.json")
        self.stdout.write(f"{dropped} launch recipes dropped: their PyPI package does not exist "
                          "(config/package_checks.json)")
        corrected = apply_corrections(servers, Path(settings.BASE_DIR) / "config" / "catalogue_corrections.json")
        self.stdout.write(f"{corrected} servers corrected from config/catalogue_corrections.json")
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        write(out, servers, sources=[{k: v for k, v in s.items() if k not in ("format", "path")} for s in SOURCES])
        notice_path = Path(notice) if notice else out.with_name("CATALOGUE_NOTICE.md")
        notice_path.write_text(notice_text(counts, len(servers)), encoding="utf-8")
        multi = sum(1 for s in servers if len({p.source for p in s.provenance}) > 1)
        self.stdout.write(
            f"wrote {len(servers)} servers ({multi} merged from several sources) to {out} "
            f"({out.stat().st_size / 1e6:.1f} MB) and {notice_path.name} in {time.monotonic() - started:.1f} s"
        )
        if len(servers) < MIN_SERVERS:
            self.stderr.write(f"warning: only {len(servers)} servers; the product promises at least {MIN_SERVERS}")
