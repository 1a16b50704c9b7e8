import os

from celery import Celery
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")

app = Celery("mcpagent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task log lines carry the request_id (and client_id) of the request that sent the task.
app.steps["worker"].add(DjangoStructLogInitStep)

