import uuid

from django.db import models


class Agent(models.Model):
    """A configured fast-agent agent wired to validated MCP servers."""

    class Status(models.TextChoices):
        CREATING = "creating"
        VALIDATING = "validating"
        READY = "ready"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("mcpagent.ApiClient", on_delete=models.CASCADE, related_name="agents")
    session = models.ForeignKey(
        "sessions_app.Session", null=True, blank=True, on_delete=models.SET_NULL, related_name="agents"
    )
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATING, db_index=True)
    # {"mcpServers": {name: entry}}; env/header values are only references ({"$credential": "<key>"}),
    # resolved through agents_app.secrets when a server starts (see agents_app.mcp_config).
    mcp_config = models.JSONField(default=dict)
    server_info = models.JSONField(default=dict, blank=True)
    workflow = models.TextField(blank=True)
    instruction = models.TextField(blank=True)
    model = models.CharField(max_length=100, blank=True)
    tools = models.JSONField(default=dict, blank=True, help_text="Validated tool names per server.")
    progress = models.JSONField(default=list, blank=True)
    error = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or str(self.id)


class AgentRun(models.Model):
    """One user message run through the agent with fast-agent (in a Celery worker). Its turns (user message,
    tool calls and results, reply) are sessions_app.Conversation rows with metadata.run_id."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    message = models.TextField()
    model = models.CharField(max_length=100)
    reply = models.TextField(blank=True)
    error = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"
