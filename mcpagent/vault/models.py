import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from mcpagent.crypto import EncryptedBytesField, EncryptedJSONField
from mcpagent.fields import END_USER_MAX_LENGTH
from mcpagent.vault.oauth_presets import PROVIDER_CHOICES

MCP_PROVIDER = "mcp"


class Credential(models.Model):
    """One secret or setting for one server, owned by an API client (and the end user it names): one row per
    (client, end user, server, key), whichever sessions and agents use it. They point to it through
    `VaultReference` and hold no copies, so a value sent again replaces it for all of them.

    Lifetime: `expires_at`, the longest of its holders' (CREDENTIAL_TTL_HOURS for a session; the agent's lifetime,
    or AGENT_CREDENTIAL_TTL_DAYS, for an agent). Rows no live holder refers to are purged by the beat task."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("mcpagent.ApiClient", on_delete=models.CASCADE, related_name="credentials")
    end_user = models.CharField(max_length=END_USER_MAX_LENGTH, blank=True, default="", db_index=True,
                                help_text="The client's own user id for the person this value belongs to.")
    server = models.CharField(max_length=200, help_text="Catalogue slug of the MCP server.")
    key = models.CharField(max_length=200, help_text="Env var or header name.")
    value = EncryptedJSONField()
    hint = models.CharField(max_length=64, help_text='Masked, e.g. "xoxb-...f3a9", or "set".')
    kind = models.CharField(max_length=20, blank=True)
    # Live check at store time (mcpagent.vault.verify): "verified", "unverified" (provider unreachable), or ""
    # (no provider check for this key). `identity` is who the provider says the token is (a login), not a secret.
    verification = models.CharField(max_length=12, blank=True, default="")
    identity = models.CharField(max_length=200, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True, help_text="Empty: the agent's lifetime.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["server", "key"]
        constraints = [
            models.UniqueConstraint(fields=["client", "end_user", "server", "key"],
                                    name="vault_credential_entry_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.server}:{self.key}"


class StoredFile(models.Model):
    """An uploaded credential/config file (JSON, YAML, PEM, text, .env), checked by mcpagent.vault.filecheck.

    No plain SHA-256 is kept: for a small secret file it would let anyone with the table confirm guesses
    offline; `fingerprint` is keyed (see mcpagent.crypto.fingerprint). A file with a key is one row per (client,
    end user, server, key), shared by reference like a Credential; a file without a key is its own row."""

    class FileType(models.TextChoices):
        CREDENTIAL = "credential"
        CONFIG = "config"
        OTHER = "other"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("mcpagent.ApiClient", on_delete=models.CASCADE, related_name="stored_files")
    end_user = models.CharField(max_length=END_USER_MAX_LENGTH, blank=True, default="", db_index=True)
    server = models.CharField(max_length=200, blank=True, help_text="Catalogue slug of the server it is for.")
    key = models.CharField(max_length=200, blank=True, help_text="Requirement it satisfies (env var given its path).")
    file_type = models.CharField(max_length=20, choices=FileType.choices, default=FileType.CREDENTIAL)
    filename = models.CharField(max_length=255, help_text="Sanitised base name.")
    content_type = models.CharField(max_length=100, help_text="Sniffed from the bytes, not from the name.")
    detected = models.CharField(max_length=50, blank=True, help_text="e.g. google_service_account, pem, dotenv.")
    size = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=64)
    content = EncryptedBytesField()
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True, help_text="Empty: the agent's lifetime.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "end_user", "server", "key"], condition=~models.Q(key=""),
                name="vault_file_entry_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.filename


class VaultReference(models.Model):
    """A session's or an agent's use of one vault entry (a Credential or a StoredFile): the holder points to the
    entry instead of holding a copy. Holders are plain ids, not foreign keys, so the vault never depends on the
    apps above it; a reference whose holder is gone is dropped by the purge, and so is an entry left with none."""

    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="references")
    stored_file = models.ForeignKey(StoredFile, null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="references")
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    agent_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(credential__isnull=True) ^ models.Q(stored_file__isnull=True),
                name="vault_reference_one_entry"),
            models.CheckConstraint(
                condition=models.Q(session_id__isnull=True) ^ models.Q(agent_id__isnull=True),
                name="vault_reference_one_holder"),
            models.UniqueConstraint(fields=["credential", "session_id"], condition=models.Q(session_id__isnull=False),
                                    name="vault_reference_credential_session"),
            models.UniqueConstraint(fields=["credential", "agent_id"], condition=models.Q(agent_id__isnull=False),
                                    name="vault_reference_credential_agent"),
            models.UniqueConstraint(fields=["stored_file", "session_id"], condition=models.Q(session_id__isnull=False),
                                    name="vault_reference_file_session"),
            models.UniqueConstraint(fields=["stored_file", "agent_id"], condition=models.Q(agent_id__isnull=False),
                                    name="vault_reference_file_agent"),
        ]

    def __str__(self) -> str:
        holder = f"agent {self.agent_id}" if self.agent_id else f"session {self.session_id}"
        return f"{holder} -> {self.credential_id or self.stored_file_id}"


class AuditEvent(models.Model):
    """Who did what to which credential or file, when and why. Never holds a value. Append-only."""

    class ActorType(models.TextChoices):
        CLIENT = "client"
        STAFF = "staff"
        SYSTEM = "system"

    class Action(models.TextChoices):
        CREATE = "create"
        READ_FOR_USE = "read_for_use"
        UPDATE = "update"
        DELETE = "delete"
        EXPIRE = "expire"
        ROTATE = "rotate"
        VALIDATE = "validate"

    class ObjectType(models.TextChoices):
        CREDENTIAL = "credential"
        FILE = "file"
        KEY = "encryption_key"
        OAUTH = "oauth_connection"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=20, choices=ObjectType.choices)
    object_id = models.CharField(max_length=64, blank=True, db_index=True)
    server = models.CharField(max_length=200, blank=True, db_index=True)
    key = models.CharField(max_length=200, blank=True)
    # Plain ids, not foreign keys: the trail outlives the client, session and agent it mentions.
    client_id = models.UUIDField(null=True, blank=True, db_index=True)
    end_user = models.CharField(max_length=END_USER_MAX_LENGTH, blank=True, default="")
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    agent_id = models.UUIDField(null=True, blank=True, db_index=True)
    reason = models.CharField(max_length=200, blank=True, help_text="The operation, e.g. chat, agent_run, ttl.")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.server}:{self.key}"


class OAuthApp(models.Model):
    """The OAuth app staff registered with one provider (one per provider). Empty endpoints and scopes take the
    provider's preset (mcpagent.vault.oauth_presets); the client secret is stored encrypted."""

    provider = models.CharField(max_length=20, choices=PROVIDER_CHOICES, unique=True)
    client_id = models.CharField(max_length=300)
    client_secret = EncryptedJSONField(null=True, blank=True)
    scopes = models.CharField(max_length=2000, blank=True, help_text="Space-separated; empty: the preset's.")
    authorization_endpoint = models.URLField(max_length=500, blank=True, help_text="Empty: the preset's.")
    token_endpoint = models.URLField(max_length=500, blank=True, help_text="Empty: the preset's.")
    revocation_endpoint = models.URLField(
        max_length=500, blank=True,
        help_text="The provider's URL for revoking (cancelling) a token, called when a connection is deleted; empty: "
                  "the preset's (some have none).")
    userinfo_endpoint = models.URLField(max_length=500, blank=True, help_text="Empty: the preset's.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OAuth app"
        ordering = ["provider"]

    def __str__(self) -> str:
        return f"{self.provider} ({self.client_id})"


class _TokenTimes(models.Model):
    """When a connection's access token expires, and when the connection was made, changed, used and refreshed."""

    access_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def refresh_due(self, rejected_access_token: str | None = None) -> bool:
        """Refresh before use: the access token expires within OAUTH_REFRESH_LEEWAY_SECONDS, or it is still the one
        a provider or server has just refused."""
        leeway = timedelta(seconds=settings.OAUTH_REFRESH_LEEWAY_SECONDS)
        expiring = self.access_expires_at is not None and self.access_expires_at <= timezone.now() + leeway
        refused = bool(rejected_access_token) and rejected_access_token == (self.token or {}).get("access_token")
        return expiring or refused


class OAuthConnection(_TokenTimes):
    """An account an end user of a client connected by OAuth: one per (client, end user, provider), used by every
    session and agent of that end user (they hold no copies). `token` holds access and refresh tokens, encrypted;
    `status` turns `needs_reauth` when a refresh fails."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        NEEDS_REAUTH = "needs_reauth"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("mcpagent.ApiClient", on_delete=models.CASCADE, related_name="oauth_connections")
    end_user = models.CharField(max_length=END_USER_MAX_LENGTH, blank=True, default="", db_index=True)
    provider = models.CharField(max_length=20, choices=PROVIDER_CHOICES)
    token = EncryptedJSONField()
    hint = models.CharField(max_length=64, help_text="Masked access token.")
    identity = models.CharField(max_length=200, blank=True, help_text="Who the provider says the account is.")
    scopes = models.CharField(max_length=2000, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)

    class Meta:
        ordering = ["provider"]
        constraints = [models.UniqueConstraint(fields=["client", "end_user", "provider"],
                                               name="vault_oauth_connection_unique")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.end_user or '-'}"


class OAuthState(models.Model):
    """One authorization in progress: the `state` sent to the provider (only its SHA-256 is kept), bound to the
    client, session and end user, usable once before `expires_at`; the PKCE verifier is encrypted."""

    state_hash = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey("mcpagent.ApiClient", on_delete=models.CASCADE, related_name="oauth_states")
    end_user = models.CharField(max_length=END_USER_MAX_LENGTH, blank=True, default="")
    session_id = models.UUIDField(null=True, blank=True)
    # "mcp" for a remote MCP server's authorization: `mcp_connection` then says which.
    provider = models.CharField(max_length=20, choices=[*PROVIDER_CHOICES, (MCP_PROVIDER, "Remote MCP server")])
    mcp_connection = models.ForeignKey("McpAuthConnection", null=True, blank=True, on_delete=models.CASCADE,
                                       related_name="states")
    code_verifier = EncryptedJSONField()
    redirect_uri = models.CharField(max_length=500)
    return_url = models.CharField(max_length=2000, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.provider} state for {self.end_user or '-'}"


class McpAuthConnection(_TokenTimes):
    """A remote MCP server an end user of a client authorized us to use (MCP authorization: OAuth 2.1 with PKCE
    against the authorization server the server's protected resource metadata names). One per (client, end user,
    server URL). `registration` is our client's registration with that authorization server (client id, and
    secret when it issued one) and `token` the access and refresh tokens, both encrypted; `endpoints` the
    discovered public metadata (issuer, authorization and token endpoints, resource, scope)."""

    class Status(models.TextChoices):
        PENDING = "pending"  # registered, not authorized yet
        ACTIVE = "active"
        NEEDS_REAUTH = "needs_reauth"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("mcpagent.ApiClient", on_delete=models.CASCADE, related_name="mcp_auth_connections")
    end_user = models.CharField(max_length=END_USER_MAX_LENGTH, blank=True, default="", db_index=True)
    server_url = models.CharField(max_length=2000, help_text="The MCP endpoint as the agent reaches it.")
    issuer = models.CharField(max_length=500, help_text="The authorization server that issues its tokens.")
    endpoints = models.JSONField(default=dict, blank=True)
    registration = EncryptedJSONField()
    token = EncryptedJSONField(null=True, blank=True)
    hint = models.CharField(max_length=64, blank=True, help_text="Masked access token.")
    scopes = models.CharField(max_length=2000, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)

    class Meta:
        verbose_name = "MCP server authorization"
        ordering = ["server_url"]
        constraints = [models.UniqueConstraint(fields=["client", "end_user", "server_url"],
                                               name="vault_mcp_auth_connection_unique")]

    def __str__(self) -> str:
        return f"{self.server_url} for {self.end_user or '-'}"
