"""python manage.py import_catalogue PATH [--format auto|official|toolsdk|docker|awesome|native] [--dry-run]"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import DatabaseError, transaction
from tqdm import tqdm

from registry_app.importers import FORMATS, SourceError, read_catalogue
from registry_app.search_index import TIDY_AFTER, tidy_tables
from registry_app.services import ImportResult, catalogue_import


class _DryRun(Exception):
    pass


def progress_enabled(stderr: OutputWrapper, forced: bool) -> bool:
    """tqdm on stderr only for a terminal (logs and CI stay clean), or when --progress asks for it."""
    stream = getattr(stderr, "_out", sys.stderr)
    return forced or (hasattr(stream, "isatty") and stream.isatty())


def run_import(path: Path, fmt: str, *, stdout: OutputWrapper, stderr: OutputWrapper, progress: bool,
               dry_run: bool = False, verbosity: int = 1) -> ImportResult:
    """Read, import (one transaction) and report: every skipped record and warning with its location, then a
    summary (nothing at verbosity 0). Shared by import_catalogue and load_default_catalogue."""
    started = time.monotonic()
    if verbosity < 1:
        stdout = OutputWrapper(io.StringIO())
    try:
        batch = read_catalogue(path, fmt)
    except SourceError as exc:
        raise CommandError(str(exc)) from None
    stdout.write(f"read {len(batch.records)} {batch.source} records from {path} in {time.monotonic() - started:.1f} s")
    with tqdm(total=len(batch.records), unit="server", desc=f"importing {batch.source}", file=stderr._out,
              disable=not progress_enabled(stderr, progress), mininterval=0.5) as bar:
        try:
            with transaction.atomic():
                result = catalogue_import(records=batch.records, progress=bar.update)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        except (DatabaseError, ImproperlyConfigured) as exc:
            raise CommandError(f"import failed and was rolled back, nothing was written: {exc}") from None
    if not dry_run and len(result.server_ids) >= TIDY_AFTER:
        tidy_tables()
    result.skipped += len(batch.skipped)
    problems = [*batch.problems, *result.problems]
    for problem in problems:
        stdout.write(str(problem))
    for note in batch.notes:
        stdout.write(f"note: {note}")
    warnings = sum(1 for p in problems if not p.skipped)
    stdout.write(
        f"{'dry run (rolled back): ' if dry_run else ''}{batch.source}: {result.summary()}"
        f"{f', {warnings} warnings' if warnings else ''}; {len(result.server_ids)} servers written "
        f"in {time.monotonic() - started:.1f} s"
    )
    result.problems = problems
    return result


def embed_stale(stdout: OutputWrapper, *, verbosity: int = 1) -> None:
    """Run the search helper's `embed_servers --stale` when it is installed."""
    if "embed_servers" in get_commands():
        call_command("embed_servers", stale=True, stdout=stdout._out, verbosity=verbosity)
    elif verbosity:
        stdout.write("embed_servers is not available: embeddings not computed")


class Command(BaseCommand):
    help = (
        "Import MCP servers from a catalogue: the official registry's server.json dump, the toolsdk registry "
        "folder, the Docker MCP catalog folder, the awesome-mcp-servers README, or our native JSON. Merges with "
        "servers from other sources on the normalised repository URL; idempotent; keeps staff edits."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="File or folder to import.")
        parser.add_argument("--format", default="auto", choices=["auto", *FORMATS], help="Default: detect.")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change, write nothing.")
        parser.add_argument("--progress", action="store_true", help="Show the progress bar even without a tty.")
        parser.add_argument("--embed", action="store_true", help="Afterwards run `embed_servers --stale`.")

    def handle(self, *args, path: str, format: str, dry_run: bool, progress: bool, embed: bool, **options):
        run_import(Path(path), format, stdout=self.stdout, stderr=self.stderr, progress=progress, dry_run=dry_run,
                   verbosity=options["verbosity"])
        if embed and not dry_run:
            embed_stale(self.stdout, verbosity=options["verbosity"])
