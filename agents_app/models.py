import uuid

from django.db import models

from mcpagent.crypto import EncryptedBytesField
from mcpagent.fields import END_USER_MAX_LENGTH


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
    # The client's own id for the person it acts for: the credentials the agent uses are theirs (vault end_user).
    end_user = models.CharField(max_length=END_USER_MAX_LENGTH, blank=True, default="", db_index=True)
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
    tool calls and results, reply) are Conversation rows with metadata.run_id."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        MESSAGE = "message"  # a client's POST /api/agents/{id}/messages
        SCHEDULE = "schedule"  # the agent's AgentSchedule (agent_schedules_run_due)
        WEBHOOK = "webhook"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MESSAGE)
    # As stored and shown: the agent's credential values the user pasted into it masked (agent_message_send).
    message = models.TextField()
    # The message as sent, encrypted, while the run waits for its worker (the model gets it unmasked); emptied
    # when the run ends. Empty when masking changed nothing.
    message_sealed = EncryptedBytesField(null=True, blank=True)
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


class AgentSchedule(models.Model):
    """When an agent runs its workflow by itself: a 5-field cron expression in `timezone`, or every
    `interval_seconds`. A beat task (agent_schedules_tick) starts the runs whose `next_run_at` has come. The
    schedule pauses itself (`paused_reason`) after AGENT_SCHEDULE_MAX_FAILURES failed runs in a row."""

    agent = models.OneToOneField(Agent, on_delete=models.CASCADE, related_name="schedule")
    cron = models.CharField(max_length=200, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    paused_reason = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="agentschedule_due")]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(cron="", interval_seconds__isnull=False)
                           | (~models.Q(cron="") & models.Q(interval_seconds__isnull=True))),
                name="agentschedule_cron_xor_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"schedule of {self.agent_id} ({self.cron or f'every {self.interval_seconds} s'})"


class AgentRunEvent(models.Model):
    """What happened in a run, in order, for people watching it: a tool call started or finished (arguments
    redacted, duration, result size, error), the agent's text, and the end (`done`). The worker keeps them in
    Redis while the run is live (agents_app.run_events) and stores them here when it ends."""

    class Kind(models.TextChoices):
        TOOL_STARTED = "tool_started"
        TOOL_FINISHED = "tool_finished"
        TEXT = "text"
        DONE = "done"

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    data = models.JSONField(default=dict)
    at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="agentrunevent_run_seq")]


class AgentTrigger(models.Model):
    """A webhook that starts a run of its agent with the request's body as input. The URL's token is shown once;
    only its SHA-256 is stored (it is looked up, never read back). The optional signing secret is stored
    encrypted and checked as HMAC-SHA256 over the body (agents_app.triggers)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="triggers")
    name = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    signing_secret = EncryptedBytesField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"trigger {self.id} of {self.agent_id}"


class TriggerDelivery(models.Model):
    """One accepted webhook call: counted for the trigger's rate limit and remembered (its delivery id and body
    digest) for TRIGGER_REPLAY_WINDOW_SECONDS so that a replay is refused."""

    trigger = models.ForeignKey(AgentTrigger, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.CharField(max_length=200, blank=True)
    body_digest = models.CharField(max_length=64)
    run = models.ForeignKey(AgentRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["trigger", "received_at"], name="triggerdelivery_recent")]
class Conversation(models.Model):
    """One turn (user, assistant, tool, system) of a session or of an agent run, in order."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"
        SYSTEM = "system"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(
        "sessions_app.Session", null=True, blank=True, on_delete=models.CASCADE, related_name="turns")
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="turns"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    message = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["timestamp", "id"]
