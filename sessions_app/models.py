import uuid

from django.db import models


class Session(models.Model):
    """One conversation with a client about one workflow, from request to a ready agent."""

    class Status(models.TextChoices):
        NEW = "new"
        ANALYSING = "analysing"
        PENDING_CREDENTIALS = "pending_credentials"
        CREATING_AGENT = "creating_agent"
        READY = "ready"
        ERROR = "error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("mcpagent.ApiClient", on_delete=models.CASCADE, related_name="sessions")
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


class Conversation(models.Model):
    """One turn (user, assistant, tool, system) of a session or of an agent run, in order."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"
        SYSTEM = "system"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.CASCADE, related_name="turns")
    agent = models.ForeignKey(
        "agents_app.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="turns"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    message = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["timestamp", "id"]
