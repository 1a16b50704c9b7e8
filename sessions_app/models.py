import uuid

from django.db import models

from agents_app.models import Conversation  # noqa: F401  (re-exported: turns of sessions and agents)
from mcpagent.fields import END_USER_MAX_LENGTH


class Session(models.Model):
    """One conversation with a client about one workflow, from request to a ready agent."""

    class Status(models.TextChoices):
        NEW = "new"
        ANALYSING = "analysing"
        PENDING_CREDENTIALS = "pending_credentials"
        CREATING_AGENT = "creating_agent"
        READY = "ready"
        ERROR = "error"

    # The worker has the session: analysing its request, or creating its agent.
    WORKER_STATUSES = (Status.ANALYSING, Status.CREATING_AGENT)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("mcpagent.ApiClient", on_delete=models.CASCADE, related_name="sessions")
    # The client's own id for the person it acts for: credentials collected here are theirs (vault end_user).
    end_user = models.CharField(max_length=END_USER_MAX_LENGTH, blank=True, default="", db_index=True)
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.NEW, db_index=True)
    # The plan: request, chosen servers, workflow (see agents_app.analysis.Plan). Never holds secret values.
    context = models.JSONField(default=dict, blank=True)
    # Requirements still to satisfy (names, descriptions, instructions; never values).
    required_credentials = models.JSONField(default=list, blank=True)
    required_files = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return str(self.id)
