import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")

app = Celery("mcpagent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The master agent keeps its tasks beside it, not in agents_app/tasks.py.
app.autodiscover_tasks(["agents_app.master"])


@worker_ready.connect
def _sweep_leftover_files(**_kwargs) -> None:
    # A worker killed at its hard time limit leaves the decrypted files of the run it was doing: remove them
    # when a worker (re)starts, not only at the next purge.
    from sessions_app.credentials import materialized_files_sweep

    materialized_files_sweep()
