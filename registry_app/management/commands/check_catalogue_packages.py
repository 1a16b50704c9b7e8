"""Check that the PyPI packages the catalogue's launch recipes name exist, and record the ones that do not in
config/package_checks.json, which build_default_catalogue applies (it drops those recipes: a server nobody can
start is better shown as "no known way to start it" than ranked as runnable and failing at agent creation).

Needs the network (maintainers run it before rebuilding the catalogue); the product never calls it. npm is not
checked: the npm registry reachable from our development machines answers 404 for packages that are published, so
a 404 there proves nothing.

    python manage.py check_catalogue_packages [--pypi-url URL] [--catalogue PATH] [--output PATH]
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry_app.importers import SourceError, read_catalogue
from registry_app.importers.common import pypi_name

RETRIES = 3


def pypi_identifiers(catalogue: Path) -> list[str]:
    batch = read_catalogue(catalogue, "native")
    return sorted({pypi_name(r.identifier) for s in batch.records for r in s.launch if r.kind == "pypi" and r.identifier})


def check_pypi(client: httpx.Client, base_url: str, name: str) -> str:
    """"present", "missing" (404) or "unknown" (the index did not answer clearly after RETRIES tries)."""
    for attempt in range(RETRIES):
        try:
            response = client.get(f"{base_url}/pypi/{name}/json")
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            return "present"
        if response is not None and response.status_code == 404:
            return "missing"
        time.sleep(0.5 * 2**attempt)
    return "unknown"


class Command(BaseCommand):
    help = "Record which PyPI packages named by the catalogue's launch recipes do not exist (needs the network)."

    def add_arguments(self, parser):
        base = Path(settings.BASE_DIR) / "config"
        parser.add_argument("--catalogue", default=str(base / "servers.json"), help="Native catalogue to check.")
        parser.add_argument("--output", default=str(base / "package_checks.json"))
        parser.add_argument("--pypi-url", default="https://pypi.org", help="PyPI (JSON API) base URL.")
        parser.add_argument("--concurrency", type=int, default=16)

    def handle(self, *args, catalogue: str, output: str, pypi_url: str, concurrency: int, **options):
        started = time.monotonic()
        try:
            names = pypi_identifiers(Path(catalogue))
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        # The catalogue built after the last check no longer names the missing packages: check those again too,
        # so one published since gets its recipe back at the next rebuild (and the others stay dropped).
        previous = Path(output)
        known_missing = set(json.loads(previous.read_text(encoding="utf-8")).get("pypi_missing", [])) \
            if previous.exists() else set()
        names = sorted(set(names) | known_missing)
        base_url = pypi_url.rstrip("/")
        self.stdout.write(f"checking {len(names)} PyPI packages at {base_url} ...")
        results: dict[str, str] = {}
        with httpx.Client(timeout=20, follow_redirects=True) as client, \
                ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for i, (name, result) in enumerate(zip(names, pool.map(lambda n: check_pypi(client, base_url, n), names)), 1):
                results[name] = result
                if i % 200 == 0 or i == len(names):
                    self.stdout.write(f"  {i}/{len(names)}")
        # An unanswered package keeps what the last check found (a missing one stays dropped).
        missing = sorted(n for n, r in results.items() if r == "missing" or (r == "unknown" and n in known_missing))
        unknown = sorted(n for n, r in results.items() if r == "unknown")
        if names and len(unknown) == len(names):
            raise CommandError(f"{base_url} answered none of the {len(names)} checks; nothing written")
        Path(output).write_text(json.dumps({
            "note": "PyPI packages named by launch recipes of config/servers.json that PyPI answered 404 for; "
                    "build_default_catalogue drops those recipes. Written by `manage.py check_catalogue_packages`.",
            "checked_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "index": base_url,
            "pypi_missing": missing,
        }, indent=1) + "\n", encoding="utf-8")
        self.stdout.write(
            f"{sum(r == 'present' for r in results.values())} present, "
            f"{sum(r == 'missing' for r in results.values())} missing, {len(unknown)} unanswered"
            + (f" ({', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}: left as they are)" if unknown else "")
            + f"; wrote {output} in {time.monotonic() - started:.1f} s"
        )
