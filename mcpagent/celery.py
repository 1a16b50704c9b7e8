import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")

app = Celery("mcpagent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The master agent keeps its tasks beside it, not in agents_app/tasks.py.
app.autodiscover_tasks(["agents_app.master"])
