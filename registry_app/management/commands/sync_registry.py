"""python manage.py sync_registry [--url URL] [--since ISO] [--page-size N] [--restart]

Incremental sync from the official MCP registry API. Each page is imported in its own transaction together
with the cursor of the next page (SyncState), so an interrupted run (network down, Ctrl-C, crash) resumes
at the first page not yet imported. A completed pass records the newest `updatedAt` it saw; the next run asks
only for servers updated since then.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from tqdm import tqdm

from registry_app.importers.registry_api import (
    RegistryClient,
    RegistryError,
    format_timestamp,
    page_records,
    parse_timestamp,
)
from registry_app.management.commands.import_catalogue import embed_stale, progress_enabled
from registry_app.search_index import TIDY_AFTER, tidy_tables
from registry_app.services import (
    ImportResult,
    sync_page_import,
    sync_state_fail,
    sync_state_finish_pass,
    sync_state_get,
    sync_state_start_pass,
)


class Command(BaseCommand):
    help = "Sync servers from the official MCP registry API (/v0/servers), incrementally and resumably."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="", help="Registry base URL (default: MCP_REGISTRY_URL).")
        parser.add_argument("--since", default="", help="Only servers updated since this RFC 3339 time or date "
                                                       "(default: the end of the last completed sync).")
        parser.add_argument("--page-size", type=int, default=100, help="Servers per page (1-100, default 100).")
        parser.add_argument("--restart", action="store_true", help="Discard a saved cursor; start a new pass.")
        parser.add_argument("--retries", type=int, default=settings.MCP_REGISTRY_RETRIES,
                            help="Attempts per page before giving up (default MCP_REGISTRY_RETRIES).")
        parser.add_argument("--backoff", type=float, default=1.0, help="First retry delay in seconds; doubles.")
        parser.add_argument("--timeout", type=float, default=settings.MCP_REGISTRY_TIMEOUT,
                            help="Per-request timeout in seconds (default MCP_REGISTRY_TIMEOUT).")
        parser.add_argument("--max-pages", type=int, default=0, help="Stop after this many pages (0: all).")
        parser.add_argument("--progress", action="store_true", help="Show the progress bar even without a tty.")
        parser.add_argument("--embed", action="store_true", help="Afterwards run `embed_servers --stale`.")

    def handle(self, *args, url: str, since: str, page_size: int, restart: bool, retries: int, backoff: float,
               timeout: float, max_pages: int, progress: bool, embed: bool, **options):
        base = (url or settings.MCP_REGISTRY_URL).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise CommandError(f"--url must be an http(s) URL, got {base!r}")
        if not 1 <= page_size <= 100:
            raise CommandError("--page-size must be between 1 and 100")
        if since:
            try:
                since = format_timestamp(parse_timestamp(since))
            except ValueError:
                raise CommandError(f"--since must be an RFC 3339 time or a date (2025-09-01), got {since!r}") from None
        state = sync_state_get(url=base)
        if restart or since or not state.cursor:
            state = sync_state_start_pass(state=state, since=since or state.watermark)
            what = f"servers updated since {state.pass_since}" if state.pass_since else "all servers"
            self.stdout.write(f"syncing {what} from {base}")
        else:
            self.stdout.write(f"resuming the interrupted sync from {base} after {state.pages} committed pages")
        client = RegistryClient(base, timeout=timeout, max_attempts=retries, backoff=backoff)
        totals = ImportResult()
        started = time.monotonic()
        pages = 0
        try:
            with tqdm(unit="page", desc="syncing", file=self.stderr._out,
                      disable=not progress_enabled(self.stderr, progress)) as bar:
                while True:
                    payload = client.fetch_page(cursor=state.cursor, since=state.pass_since, limit=page_size)
                    page = page_records(payload, page_number=state.pages + 1)
                    if page.next_cursor and page.next_cursor == state.cursor:
                        raise RegistryError(f"the registry returned the same cursor again ({page.next_cursor!r})")
                    result = sync_page_import(state=state, records=page.records, next_cursor=page.next_cursor,
                                              max_updated=page.max_updated)
                    for problem in [*page.problems, *result.problems]:
                        self.stdout.write(str(problem))
                    _add(totals, result, skipped=sum(p.skipped for p in page.problems))
                    pages += 1
                    bar.update(1)
                    if not page.next_cursor or (max_pages and pages >= max_pages):
                        break
        except RegistryError as exc:
            sync_state_fail(state=state, error=str(exc))
            raise CommandError(f"{str(exc).rstrip('.')}; {state.pages} pages of this pass were imported and kept; "
                               "run sync_registry again to resume from the next page") from None
        except DatabaseError as exc:
            raise CommandError(f"import failed (the current page was rolled back; earlier pages kept): {exc}") from None
        finally:
            client.close()
        if len(set(totals.server_ids)) >= TIDY_AFTER:
            tidy_tables()
        if state.cursor:
            self.stdout.write(f"stopped after {pages} pages (--max-pages); run again to continue")
        else:
            sync_state_finish_pass(state=state)
        self.stdout.write(
            f"registry-api: {pages} pages, {totals.summary()}; {len(set(totals.server_ids))} servers written, "
            f"{client.retries} retries, in {time.monotonic() - started:.1f} s"
            + (f"; next sync: updated since {state.watermark}" if state.watermark and not state.cursor else "")
        )
        if embed:
            embed_stale(self.stdout)


def _add(totals: ImportResult, result: ImportResult, *, skipped: int) -> None:
    totals.created += result.created
    totals.updated += result.updated
    totals.merged += result.merged
    totals.unchanged += result.unchanged
    totals.skipped += result.skipped + skipped
    totals.kept_out += result.kept_out
    totals.server_ids += result.server_ids
