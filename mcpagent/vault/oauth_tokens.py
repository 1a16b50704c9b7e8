"""OAuth connections' tokens: saved after an authorization, read for use (refreshed first when expired, or when
the provider just refused the access token with a 401), marked `needs_reauth` when a refresh fails, revoked when
the connection is deleted. Every save, read for use, refresh and deletion is audited; tokens are only ever held
in the encrypted `token` field and in memory.
"""

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient
from mcpagent.vault import formats, oauth_client
from mcpagent.vault.audit import ActorLike
from mcpagent.vault.connection_tokens import connection_audit, connection_refresh_locked, token_expiry, token_kept
from mcpagent.vault.models import AuditEvent, OAuthApp, OAuthConnection
from mcpagent.vault.oauth_revocation import connection_revoke

Status = OAuthConnection.Status


@dataclass(frozen=True)
class TokenForUse:
    """What a server may be given: the tokens and the OAuth app's client id/secret (some servers refresh for
    themselves). Never log it."""

    provider: str
    access_token: str
    refresh_token: str
    client_id: str
    client_secret: str
    token_endpoint: str
    scopes: str


def app_for(provider: str) -> OAuthApp | None:
    """The active OAuth app registered for `provider`, or None (then its services are asked for tokens as before)."""
    return OAuthApp.objects.filter(provider=provider, is_active=True).first()


@transaction.atomic
def connection_save(*, client: ApiClient, end_user: str, provider: str, token: dict, identity: str,
                    actor: ActorLike, reason: str) -> OAuthConnection:
    """Store (or replace) the end user's connection to `provider` with a fresh token answer."""
    kept = token_kept(token)
    connection = (OAuthConnection.objects.select_for_update()
                  .filter(client=client, end_user=end_user, provider=provider).first())
    action = AuditEvent.Action.UPDATE if connection else AuditEvent.Action.CREATE
    if connection is None:
        connection = OAuthConnection(client=client, end_user=end_user, provider=provider)
    connection.token = kept
    connection.hint = formats.mask(kept["access_token"])
    connection.identity = identity
    connection.scopes = str(kept.get("scope") or "")[:2000]
    connection.status = Status.ACTIVE
    connection.access_expires_at = token_expiry(kept)
    connection.refreshed_at = timezone.now()
    connection.save()
    connection_audit(connection, action, actor, reason, {"scopes": connection.scopes})
    return connection


def connection_find(*, client: ApiClient, end_user: str, provider: str) -> OAuthConnection | None:
    return (OAuthConnection.objects.filter(client=client, end_user=end_user, provider=provider)
            .defer("token").first())


def _reauth_error(provider: str, why: str) -> ApplicationError:
    return ApplicationError(
        f"The {provider} connection needs to be authorized again ({why}).", code="oauth_reauth_needed", status=409,
        details={"server": provider, "provider": provider,
                 "hint": "Send a chat message: the reply carries a new authorization_url."})


def _store_refreshed(connection: OAuthConnection, token: dict) -> None:
    connection.token = token
    connection.hint = formats.mask(token["access_token"])
    connection.access_expires_at = token_expiry(token)
    connection.refreshed_at = timezone.now()
    connection.save(update_fields=["token", "hint", "access_expires_at", "refreshed_at", "updated_at"])


def token_for_use(*, client: ApiClient, end_user: str, provider: str, actor: ActorLike, reason: str,
                  rejected_access_token: str | None = None) -> TokenForUse:
    """The end user's tokens for `provider`, refreshed first when the access token has expired (or is about to),
    or when `rejected_access_token` (the one a provider just answered 401 to) is still the stored one. Audited as
    read_for_use. No connection, a connection that needs reauthorization, or a refresh the provider refuses: 409
    oauth_reauth_needed (the connection is then marked needs_reauth)."""
    app = app_for(provider)
    if app is None:
        raise ApplicationError(f"No OAuth app is registered for {provider}.", code="oauth_not_configured",
                               status=409, details={"provider": provider})
    with transaction.atomic():
        connection = (OAuthConnection.objects.select_for_update()
                      .filter(client=client, end_user=end_user, provider=provider).first())
        if connection is None:
            raise _reauth_error(provider, "it is not connected")
        if connection.status == Status.ACTIVE and connection.refresh_due(rejected_access_token):
            connection_refresh_locked(
                connection, actor, reason, store=_store_refreshed,
                refresh=lambda _connection, refresh_token: oauth_client.refresh(app, refresh_token=refresh_token))
        if connection.status != Status.ACTIVE:
            failed = True
        else:
            failed = False
            connection.last_used_at = timezone.now()
            connection.save(update_fields=["last_used_at"])
            connection_audit(connection, AuditEvent.Action.READ_FOR_USE, actor, reason)
    if failed:
        raise _reauth_error(provider, "its refresh was refused")
    ends = oauth_client.endpoints(app)
    return TokenForUse(provider=provider, access_token=connection.token["access_token"],
                       refresh_token=connection.token.get("refresh_token", ""), client_id=app.client_id,
                       client_secret=app.client_secret or "", token_endpoint=ends.token,
                       scopes=connection.scopes or ends.scopes)


def identity_for(*, client: ApiClient, end_user: str, provider: str, actor: ActorLike, reason: str) -> str:
    """Who the connected account is, from the provider's userinfo endpoint: a 401 refreshes the token once and asks
    again (the same path any use of an access token takes after a 401)."""
    app = app_for(provider)
    token = token_for_use(client=client, end_user=end_user, provider=provider, actor=actor, reason=reason)
    status, who = oauth_client.userinfo(app, access_token=token.access_token)
    if status == 401:
        token = token_for_use(client=client, end_user=end_user, provider=provider, actor=actor, reason=reason,
                              rejected_access_token=token.access_token)
        status, who = oauth_client.userinfo(app, access_token=token.access_token)
    return who


def connection_revoke_and_delete(connection: OAuthConnection, *, actor: ActorLike, reason: str) -> dict[str, Any]:
    """Revoke the connection's tokens at the provider (in its own style, oauth_revocation), then delete it. The
    deletion happens even when revocation fails: the user asked to forget it. The result says whether the provider
    revoked it (`revoked`: true, false when it refused or was unreachable, null when it offers no revocation) and
    `message`, what to tell the user."""
    app = OAuthApp.objects.filter(provider=connection.provider).first()
    token = OAuthConnection.objects.get(pk=connection.pk).token or {}
    outcome = connection_revoke(app, connection.provider, token)
    with transaction.atomic():
        connection_audit(connection, AuditEvent.Action.DELETE, actor, reason, {"revoked": outcome.revoked})
        OAuthConnection.objects.filter(pk=connection.pk).delete()
    return {"oauth_connections": 1, "provider": connection.provider, "revoked": outcome.revoked,
            "message": outcome.message}
