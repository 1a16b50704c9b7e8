"""What OAuth connections (oauth_tokens) and MCP authorizations (mcp_auth_flow) do alike with their tokens: keep
the useful part of a token answer, audit what happens to a connection, and refresh under the row's lock (a refusal
marks the connection needs_reauth). Tokens are only ever held in the encrypted `token` field and in memory.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime
from datetime import timezone as dt_timezone

from mcpagent.errors import ApplicationError
from mcpagent.vault.audit import ActorLike, audit_record
from mcpagent.vault.models import AuditEvent, McpAuthConnection, OAuthConnection
from mcpagent.vault.oauth_client import OAuthFailure

logger = logging.getLogger("mcpagent.vault")
_TOKEN_FIELDS = ("access_token", "refresh_token", "token_type", "expires_at", "scope", "id_token")
Connection = OAuthConnection | McpAuthConnection


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


def connection_audit(connection: Connection, action: str, actor: ActorLike, reason: str,
                     metadata: dict | None = None):
    """Audit an action on a connection: an OAuth connection is named by its provider, an MCP authorization by its
    server's URL (also in the metadata, where it fits whole)."""
    if isinstance(connection, McpAuthConnection):
        server = connection.server_url[:200]
        metadata = {"server_url": connection.server_url[:500], **(metadata or {})}
    else:
        server = connection.provider
    return audit_record(action=action, object_type=AuditEvent.ObjectType.OAUTH, actor=actor, reason=reason,
                        metadata=metadata or {}, object_id=str(connection.pk), server=server,
                        client_id=connection.client_id, end_user=connection.end_user)


def _unreachable(connection: Connection) -> ApplicationError:
    if isinstance(connection, McpAuthConnection):
        message = f"The authorization server of {connection.server_url} could not be reached to refresh the token."
        details = {"server_url": connection.server_url}
    else:
        message = f"{connection.provider} could not be reached to refresh the connection."
        details = {"provider": connection.provider}
    return ApplicationError(message, code="oauth_unreachable", status=503,
                            details={**details, "retry_after_seconds": 30})


def connection_refresh_locked(connection: Connection, actor: ActorLike, reason: str, *,
                              refresh: Callable[[Connection, str], dict],
                              store: Callable[[Connection, dict], None]) -> None:
    """Refresh inside the caller's transaction (the row is locked): `refresh` asks for a new token answer with the
    refresh token, `store` saves what of it is kept. An authorization server that cannot be reached: 503
    oauth_unreachable. A refusal (or no refresh token) marks the connection needs_reauth and returns (committed
    with the caller's transaction, which then reports it)."""
    refresh_token = (connection.token or {}).get("refresh_token")
    try:
        if not refresh_token:
            raise OAuthFailure("no_refresh_token", "no refresh token was given")
        answer = refresh(connection, refresh_token)
    except OAuthFailure as failure:
        if failure.error == "unreachable":
            raise _unreachable(connection) from None
        connection.status = connection.Status.NEEDS_REAUTH
        connection.save(update_fields=["status", "updated_at"])
        connection_audit(connection, AuditEvent.Action.ROTATE, actor, reason,
                         {"refreshed": False, "error": failure.error})
        what = ("an MCP server's token" if isinstance(connection, McpAuthConnection)
                else f"a {connection.provider} connection")
        logger.info("refresh of %s failed (%s): needs reauthorization", what, failure.error)
        return
    store(connection, token_kept(answer, connection.token))
    connection_audit(connection, AuditEvent.Action.ROTATE, actor, reason, {"refreshed": True})
