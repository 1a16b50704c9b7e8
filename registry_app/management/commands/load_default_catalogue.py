"""python manage.py load_default_catalogue [--if-empty] [--no-embed]

Loads the bundled catalogue (config/servers.json, built by build_default_catalogue) into the database, then
computes missing embeddings (`embed_servers --stale`). `make run` calls it with --if-empty on every start.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry_app.management.commands.import_catalogue import embed_stale, run_import
from registry_app.models import McpServer


def default_catalogue_path() -> Path:
    return Path(settings.BASE_DIR) / "config" / "servers.json"


class Command(BaseCommand):
    help = "Import the bundled default catalogue (config/servers.json), then embed the servers that need it."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true",
                            help="Skip the import when the catalogue already has servers (embeddings still checked).")
        parser.add_argument("--path", default="", help="Another catalogue file in the native format.")
        parser.add_argument("--no-embed", action="store_true", help="Do not run embed_servers --stale afterwards.")
        parser.add_argument("--progress", action="store_true", help="Show progress bars even without a tty.")

    def handle(self, *args, if_empty: bool, path: str, no_embed: bool, progress: bool, **options):
        started = time.monotonic()
        verbosity = options["verbosity"]
        catalogue = Path(path) if path else default_catalogue_path()
        existing = McpServer.objects.count()
        if if_empty and existing:
            if verbosity:
                self.stdout.write(f"catalogue already has {existing} servers; not importing {catalogue.name}")
        else:
            if not catalogue.is_file():
                raise CommandError(f"{catalogue} is missing; build it with `python manage.py build_default_catalogue`")
            run_import(catalogue, "native", stdout=self.stdout, stderr=self.stderr, progress=progress,
                       verbosity=verbosity)
        if not no_embed:
            embed_stale(self.stdout, verbosity=verbosity)
        if verbosity:
            self.stdout.write(f"default catalogue ready: {McpServer.objects.count()} servers "
                              f"({time.monotonic() - started:.1f} s)")
