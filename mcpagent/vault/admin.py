"""Admin for credentials, files and the audit trail: staff see names and masked hints, never values; the audit
trail is read-only; deletions go through the services so they are audited with the staff user as actor."""

from urllib.parse import urlsplit

from django import forms
from django.contrib import admin

from mcpagent.vault.audit import Actor
from mcpagent.vault.files import file_delete
from mcpagent.vault.mcp_auth_flow import mcp_connection_revoke_and_delete
from mcpagent.vault.models import AuditEvent, Credential, McpAuthConnection, OAuthApp, OAuthConnection, StoredFile
from mcpagent.vault.oauth_tokens import connection_revoke_and_delete
from mcpagent.vault.store import credential_delete

_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "userinfo_endpoint")


class _SecretAdmin(admin.ModelAdmin):
    """View and delete only: values are written through the API, never typed into (or shown by) the admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*self.secret_field.split())

    def delete_model(self, request, obj) -> None:
        self.delete_one(obj, Actor.for_staff(request.user))

    def delete_queryset(self, request, queryset) -> None:
        # Also what Django's "delete selected" action calls, so bulk deletions are audited too.
        actor = Actor.for_staff(request.user)
        for obj in queryset:
            self.delete_one(obj, actor)


class _ReferencedAdmin(_SecretAdmin):
    """Vault entries that sessions and agents refer to."""

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("references")

    @admin.display(description="held by")
    def holders(self, obj) -> str:
        """The sessions and agents that use this entry (they hold references, not copies)."""
        return ", ".join(f"agent {ref.agent_id}" if ref.agent_id else f"session {ref.session_id}"
                         for ref in obj.references.all()) or "-"


@admin.register(Credential)
class CredentialAdmin(_ReferencedAdmin):
    secret_field = "value"
    list_display = ["server", "key", "hint", "kind", "client", "end_user", "holders", "expires_at",
                    "last_used_at"]
    list_filter = ["server", "kind"]
    search_fields = ["server", "key", "client__name", "end_user"]
    fields = ["id", "client", "end_user", "holders", "server", "key", "hint", "kind", "expires_at",
              "created_at", "updated_at", "last_used_at"]
    readonly_fields = fields

    def delete_one(self, obj: Credential, actor: Actor) -> None:
        credential_delete(client=obj.client, credential_id=obj.pk, actor=actor, reason="admin")


@admin.register(StoredFile)
class StoredFileAdmin(_ReferencedAdmin):
    secret_field = "content"
    list_display = ["filename", "server", "key", "file_type", "content_type", "detected", "size", "client",
                    "end_user", "holders", "expires_at"]
    list_filter = ["file_type", "content_type", "detected"]
    search_fields = ["filename", "server", "key", "client__name"]
    fields = ["id", "client", "end_user", "holders", "server", "key", "file_type", "filename",
              "content_type", "detected", "size", "fingerprint", "expires_at", "created_at", "updated_at", "last_used_at"]
    readonly_fields = fields

    def delete_one(self, obj: StoredFile, actor: Actor) -> None:
        file_delete(client=obj.client, file_id=obj.pk, actor=actor, reason="admin")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail: staff read it; nobody adds, edits or deletes entries here."""

    list_display = ["at", "action", "actor_type", "actor_label", "object_type", "server", "key", "reason",
                    "session_id", "agent_id"]
    list_filter = ["action", "actor_type", "object_type", "server"]
    search_fields = ["actor_label", "actor_id", "server", "key", "object_id", "reason"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OAuthAppForm(forms.ModelForm):
    """The client secret is typed in, never shown: left empty on a change, the stored one stays."""

    client_secret_input = forms.CharField(
        label="Client secret", required=False, strip=True, max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave empty to keep the current secret.")

    class Meta:
        model = OAuthApp
        fields = ["provider", "client_id", "scopes", *_ENDPOINTS, "is_active"]

    def clean(self):
        data = super().clean()
        for name in _ENDPOINTS:
            url = data.get(name) or ""
            parts = urlsplit(url)
            # Plain http only to this machine (a test authorization server); a provider is always https.
            if url and parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
                self.add_error(name, "Use https (http only for 127.0.0.1 or localhost).")
        if not self.instance.pk and not data.get("client_secret_input"):
            self.add_error("client_secret_input", "A new OAuth app needs its client secret.")
        return data

    def save(self, commit=True):
        app = super().save(commit=False)
        if self.cleaned_data.get("client_secret_input"):
            app.client_secret = self.cleaned_data["client_secret_input"]
        if commit:
            app.save()
        return app


@admin.register(OAuthApp)
class OAuthAppAdmin(admin.ModelAdmin):
    """Staff register one OAuth app per provider; its services are then connected by OAuth instead of pasted
    tokens. Empty endpoints and scopes take the provider's preset."""

    form = OAuthAppForm
    list_display = ["provider", "client_id", "is_active", "updated_at"]
    list_filter = ["is_active"]
    fields = ["provider", "client_id", "client_secret_input", "scopes", *_ENDPOINTS, "is_active"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("client_secret")


@admin.register(OAuthConnection)
class OAuthConnectionAdmin(_SecretAdmin):
    secret_field = "token"
    list_display = ["provider", "client", "end_user", "identity", "hint", "status", "last_used_at", "refreshed_at"]
    list_filter = ["provider", "status"]
    search_fields = ["provider", "client__name", "end_user", "identity"]
    fields = ["id", "client", "end_user", "provider", "identity", "hint", "scopes", "status", "access_expires_at",
              "created_at", "updated_at", "last_used_at", "refreshed_at"]
    readonly_fields = fields

    def delete_one(self, obj: OAuthConnection, actor: Actor) -> None:
        connection_revoke_and_delete(obj, actor=actor, reason="admin")


@admin.register(McpAuthConnection)
class McpAuthConnectionAdmin(_SecretAdmin):
    secret_field = "token registration"  # both encrypted, neither shown
    list_display = ["server_url", "client", "end_user", "issuer", "hint", "status", "last_used_at", "refreshed_at"]
    list_filter = ["status"]
    search_fields = ["server_url", "client__name", "end_user", "issuer"]
    fields = ["id", "client", "end_user", "server_url", "issuer", "endpoints", "hint", "scopes", "status",
              "access_expires_at", "created_at", "updated_at", "last_used_at", "refreshed_at"]
    readonly_fields = fields

    def delete_one(self, obj: McpAuthConnection, actor: Actor) -> None:
        mcp_connection_revoke_and_delete(obj, actor=actor, reason="admin")
