import os

from celery import Celery
from celery.signals import worker_ready
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")

app = Celery("mcpagent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The master agent keeps its tasks beside it, not in agents_app/tasks.py.
app.autodiscover_tasks(["agents_app.master"])
# Task log lines carry the request_id (and client_id) of the request that sent the task.
app.steps["worker"].add(DjangoStructLogInitStep)


@worker_ready.connect
def _sweep_leftover_files(**_kwargs) -> None:
    # A worker killed at its hard time limit leaves the decrypted files of the run it was doing: remove them
    # when a worker (re)starts, not only at the next purge.
    from sessions_app.credentials import materialized_files_sweep

    materialized_files_sweep()
