"""`make run`: migrate, load the default catalogue on first run, serve with gunicorn until Ctrl-C, then stop
what this command started (the embedded database)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

from mcpagent import embedded_db
from mcpagent.env import environ_for_own_process


class Command(BaseCommand):
    help = "Set up the database and catalogue if needed, then serve the API (gunicorn) until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1:8000"))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
        parser.add_argument("--skip-catalogue", action="store_true", help="Do not load the default catalogue.")

    def handle(self, *args, bind: str, workers: int, skip_catalogue: bool, **options):
        started = time.monotonic()
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(f"database ready ({'embedded' if settings.EMBEDDED_DATABASE else 'DATABASE_URL'})")
        if not skip_catalogue and "load_default_catalogue" in get_commands():
            call_command("load_default_catalogue", if_empty=True)
        self.stdout.write(f"ready in {time.monotonic() - started:.1f} s; serving http://{bind} (Ctrl-C to stop)")
        gunicorn = Path(sys.executable).with_name("gunicorn")
        proc = subprocess.Popen(
            [str(gunicorn), "mcpagent.wsgi", "-c", "python:mcpagent.gunicorn_conf", "--bind", bind,
             "--workers", str(workers), "--access-logfile", "-", "--graceful-timeout", "5"],
            env=environ_for_own_process(),  # its workers read the settings again, secrets included
        )
        try:
            proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        finally:
            if embedded_db.started_here:
                embedded_db.stop(settings.DATA_DIR / "postgres")
                self.stdout.write("embedded database stopped")
