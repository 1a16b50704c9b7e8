"""OAuth connections' tokens: saved after an authorization, read for use (refreshed first when expired, or when
the provider just refused the access token with a 401), marked `needs_reauth` when a refresh fails, revoked when
the connection is deleted. Every save, read for use, refresh and deletion is audited; tokens are only ever held
in the encrypted `token` field and in memory.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import transaction
from django.utils import timezone

from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient
from mcpagent.vault import formats, oauth_client
from mcpagent.vault.audit import ActorLike, audit_record
from mcpagent.vault.models import AuditEvent, OAuthApp, OAuthConnection
from mcpagent.vault.oauth_revocation import connection_revoke

logger = logging.getLogger("mcpagent.vault")
Status = OAuthConnection.Status
_TOKEN_FIELDS = ("access_token", "refresh_token", "token_type", "expires_at", "scope", "id_token")


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


def _audit(connection: OAuthConnection, action: str, actor: ActorLike, reason: str, metadata: dict | None = None):
    return audit_record(action=action, object_type=AuditEvent.ObjectType.OAUTH, actor=actor, reason=reason,
                        metadata=metadata or {}, object_id=str(connection.pk), server=connection.provider,
                        client_id=connection.client_id, end_user=connection.end_user)


def token_expiry(token: dict) -> datetime | None:
    expires_at = token.get("expires_at")
    if isinstance(expires_at, (int, float)):
        return datetime.fromtimestamp(expires_at, tz=dt_timezone.utc)
    return None


def token_kept(token: dict, previous: dict | None = None) -> dict:
    kept = {k: token[k] for k in _TOKEN_FIELDS if token.get(k) not in (None, "")}
    if "expires_at" not in kept and isinstance(token.get("expires_in"), (int, float)):
        kept["expires_at"] = int(time.time() + token["expires_in"])
    if previous and not kept.get("refresh_token") and previous.get("refresh_token"):
        kept["refresh_token"] = previous["refresh_token"]  # a refresh answer need not repeat it (RFC 6749 6)
    return kept


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
    _audit(connection, action, actor, reason, {"scopes": connection.scopes})
    return connection


def connection_find(*, client: ApiClient, end_user: str, provider: str) -> OAuthConnection | None:
    return (OAuthConnection.objects.filter(client=client, end_user=end_user, provider=provider)
            .defer("token").first())


def _reauth_error(provider: str, why: str) -> ApplicationError:
    return ApplicationError(
        f"The {provider} connection needs to be authorized again ({why}).", code="oauth_reauth_needed", status=409,
        details={"server": provider, "provider": provider,
                 "hint": "Send a chat message: the reply carries a new authorization_url."})


def _refresh_locked(connection: OAuthConnection, app: OAuthApp, actor: ActorLike, reason: str) -> None:
    """Refresh inside the caller's transaction (the row is locked). A refusal marks the connection needs_reauth
    (committed: the caller then raises)."""
    refresh_token = connection.token.get("refresh_token")
    try:
        if not refresh_token:
            raise oauth_client.OAuthFailure("no_refresh_token", "the provider gave no refresh token")
        answer = oauth_client.refresh(app, refresh_token=refresh_token)
    except oauth_client.OAuthFailure as failure:
        if failure.error == "unreachable":
            raise ApplicationError(f"{connection.provider} could not be reached to refresh the connection.",
                                   code="oauth_unreachable", status=503,
                                   details={"provider": connection.provider, "retry_after_seconds": 30}) from None
        connection.status = Status.NEEDS_REAUTH
        connection.save(update_fields=["status", "updated_at"])
        _audit(connection, AuditEvent.Action.ROTATE, actor, reason, {"refreshed": False, "error": failure.error})
        logger.info("refresh of a %s connection failed (%s): needs reauthorization", connection.provider,
                    failure.error)
        return
    connection.token = token_kept(answer, connection.token)
    connection.hint = formats.mask(connection.token["access_token"])
    connection.access_expires_at = token_expiry(connection.token)
    connection.refreshed_at = timezone.now()
    connection.save(update_fields=["token", "hint", "access_expires_at", "refreshed_at", "updated_at"])
    _audit(connection, AuditEvent.Action.ROTATE, actor, reason, {"refreshed": True})


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
            _refresh_locked(connection, app, actor, reason)
        if connection.status != Status.ACTIVE:
            failed = True
        else:
            failed = False
            connection.last_used_at = timezone.now()
            connection.save(update_fields=["last_used_at"])
            _audit(connection, AuditEvent.Action.READ_FOR_USE, actor, reason)
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
        _audit(connection, AuditEvent.Action.DELETE, actor, reason, {"revoked": outcome.revoked})
        OAuthConnection.objects.filter(pk=connection.pk).delete()
    return {"oauth_connections": 1, "provider": connection.provider, "revoked": outcome.revoked,
            "message": outcome.message}
