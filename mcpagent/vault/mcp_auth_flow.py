"""MCP authorization for remote MCP servers: the link, its callback, and the tokens in use.

`mcp_authorization_start` discovers what the server wants (mcp_auth_discovery, the `mcp` SDK's helpers), registers
our client with its authorization server once per (client, end user, server) and keeps that registration encrypted
in the vault, then makes a one-time `state` like any provider authorization (oauth_states) and returns the
authorization URL (authlib: PKCE S256 plus the RFC 8707 `resource`). The shared callback spends the state and calls
`mcp_authorization_finish`, which exchanges the code and stores the tokens. `mcp_token_for_use` hands the access
token to a server's start, refreshed first when it has expired or the server just refused it; a refused refresh
marks the connection `needs_reauth`, and the next validation offers a new link.

Why not the SDK's OAuthClientProvider for the flow itself: it keeps the PKCE verifier and the state in memory
between the redirect and the callback, in one process; here the callback is another HTTP request, maybe on another
worker, so both live in the vault instead. Its discovery and registration helpers are used as they are.
"""

import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx2
from asgiref.sync import async_to_sync
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient
from mcpagent.vault import formats, oauth_client
from mcpagent.vault.audit import Actor, ActorLike
from mcpagent.vault.connection_tokens import connection_audit, connection_refresh_locked, token_expiry, token_kept
from mcpagent.vault.mcp_auth_discovery import DiscoveryFailure, discover, register, url_problem
from mcpagent.vault.models import MCP_PROVIDER, AuditEvent, McpAuthConnection, OAuthState
from mcpagent.vault.oauth_states import Finished, bad_state, return_url_check, state_create

logger = logging.getLogger("mcpagent.vault")
Status = McpAuthConnection.Status
_AUTH_METHODS = {"client_secret_basic", "client_secret_post", "none"}


@dataclass(frozen=True)
class McpToken:
    """The access token a remote server's start sends as `Authorization: Bearer`. Never log it."""

    server_url: str
    access_token: str


def _session(connection: McpAuthConnection, *, redirect_uri: str | None = None) -> OAuth2Session:
    registration, ends = connection.registration, connection.endpoints
    method = registration.get("token_endpoint_auth_method") or "none"
    session = OAuth2Session(
        client_id=registration["client_id"], client_secret=registration.get("client_secret") or None,
        scope=ends.get("scope") or None, redirect_uri=redirect_uri, code_challenge_method="S256",
        token_endpoint_auth_method=method if method in _AUTH_METHODS else "none",
        revocation_endpoint_auth_method=method if method in _AUTH_METHODS else "none",
    )
    session.max_redirects = 0
    return session


def _endpoint(connection: McpAuthConnection, name: str) -> str:
    url = connection.endpoints.get(name) or ""
    problem = url_problem(url) if url else "none is published"
    if problem:
        raise oauth_client.OAuthFailure("unreachable", f"its {name.replace('_', ' ')} cannot be used ({problem})")
    return url


def _unavailable(server_url: str, why: str, *, status: int = 502) -> ApplicationError:
    return ApplicationError(f"The MCP server at {server_url} asks for authorization, but {why}.",
                            code="mcp_authorization_unavailable", status=status,
                            details={"server_url": server_url,
                                     "hint": "Check the server's URL; its operator publishes the OAuth metadata."})


def _discovered_connection(*, client: ApiClient, end_user: str, server_url: str,
                           redirect_uri: str) -> McpAuthConnection | None:
    """The end user's connection row for the server with fresh metadata and a usable registration (registering
    when there is none yet, or the authorization server or our redirect URI changed); None if not protected."""
    timeout = settings.OAUTH_HTTP_TIMEOUT_SECONDS
    try:
        discovered = async_to_sync(discover)(server_url, timeout=timeout)
        if discovered is None:
            return None
        connection = McpAuthConnection.objects.filter(client=client, end_user=end_user, server_url=server_url).first()
        registration = connection.registration if connection is not None else None
        if not registration or registration.get("issuer") != discovered.issuer \
                or registration.get("redirect_uri") != redirect_uri:
            registration = async_to_sync(register)(discovered, redirect_uri=redirect_uri, timeout=timeout)
    except DiscoveryFailure as failure:
        raise _unavailable(server_url, str(failure)) from None
    except httpx2.HTTPError as exc:
        logger.info("MCP authorization discovery for %s failed: %s", server_url[:200], type(exc).__name__)
        raise _unavailable(server_url, f"it or its authorization server could not be reached "
                                       f"({type(exc).__name__})", status=503) from None
    with transaction.atomic():
        connection, created = McpAuthConnection.objects.select_for_update().get_or_create(
            client=client, end_user=end_user, server_url=server_url,
            defaults={"issuer": discovered.issuer, "registration": registration, "endpoints": discovered.endpoints()})
        if not created:
            if connection.issuer != discovered.issuer:  # tokens of another authorization server are no use here
                connection.token, connection.hint, connection.status = None, "", Status.PENDING
            connection.issuer, connection.registration = discovered.issuer, registration
            connection.endpoints = discovered.endpoints()
            connection.save()
    return connection


def mcp_authorization_start(*, client: ApiClient, end_user: str, session_id: Any, server_url: str, redirect_uri: str,
                            return_url: str = "") -> str | None:
    """An authorization URL for the remote MCP server at `server_url`, or None when it needs no authorization.
    The link works once, for OAUTH_STATE_TTL_SECONDS. A server whose metadata is missing or unusable: 502
    mcp_authorization_unavailable; one that cannot be reached: 503."""
    return_url = return_url_check(client=client, return_url=return_url)
    if mcp_authorization_prepare(client=client, end_user=end_user, server_url=server_url,
                                 redirect_uri=redirect_uri) is None:
        return None
    return mcp_authorization_link(client=client, end_user=end_user, session_id=session_id, server_url=server_url,
                                  return_url=return_url)


def mcp_authorization_prepare(*, client: ApiClient, end_user: str, server_url: str,
                              redirect_uri: str) -> McpAuthConnection | None:
    """Discover and register over the network, and keep both on the end user's connection row, so that links can
    later be made from the row alone (mcp_authorization_link). None when the server needs no authorization."""
    return _discovered_connection(client=client, end_user=end_user, server_url=server_url, redirect_uri=redirect_uri)


def mcp_authorization_link(*, client: ApiClient, end_user: str, session_id: Any, server_url: str,
                           return_url: str = "") -> str | None:
    """A new one-time authorization URL from the discovery and registration the connection row already holds: no
    network call (for answers to a GET). None when nothing was prepared for the server yet."""
    connection = McpAuthConnection.objects.filter(client=client, end_user=end_user, server_url=server_url).first()
    if connection is None or not (connection.registration or {}).get("client_id") \
            or not (connection.endpoints or {}).get("authorization_endpoint"):
        return None
    return_url = return_url_check(client=client, return_url=return_url)
    redirect_uri = connection.registration.get("redirect_uri") or ""
    verifier = oauth_client.new_code_verifier()
    state = state_create(client=client, end_user=end_user, session_id=session_id, provider=MCP_PROVIDER,
                         code_verifier=verifier, redirect_uri=redirect_uri, return_url=return_url,
                         mcp_connection=connection)
    with _session(connection, redirect_uri=redirect_uri) as session:
        url, _ = session.create_authorization_url(connection.endpoints["authorization_endpoint"], state=state,
                                                  code_verifier=verifier, resource=connection.endpoints["resource"])
    return url


def mcp_authorization_finish(row: OAuthState, *, code: str, error: str = "", error_description: str = "") -> Finished:
    """Exchange the code of a spent MCP state (oauth_flow.authorization_finish spends it) and store the tokens."""
    connection = row.mcp_connection
    if connection is None:  # the connection was deleted while the user was away
        raise bad_state()
    details = {"server_url": connection.server_url}
    if error:
        failure = oauth_client.OAuthFailure(re.sub(r"[^a-z_]", "", error.lower())[:64], error_description)
        raise ApplicationError(f"The MCP server's authorization server did not authorize access ({failure.error}).",
                               code="oauth_denied", status=400, details={**details, "reason": failure.description})
    if not isinstance(code, str) or not code or len(code) > 2000:
        raise ApplicationError("The authorization answer has no usable code.", code="oauth_failed", status=400,
                               details=details)
    try:
        endpoint = _endpoint(connection, "token_endpoint")
        with _session(connection, redirect_uri=row.redirect_uri) as session:
            token = oauth_client.token_checked(oauth_client.provider_call("code exchange", lambda timeout: (
                session.fetch_token(endpoint, grant_type="authorization_code", code=code,
                                    code_verifier=row.code_verifier, resource=connection.endpoints["resource"],
                                    timeout=timeout, allow_redirects=False))))
    except oauth_client.OAuthFailure as failure:
        logger.info("an MCP authorization server refused a code exchange: %s", failure.error)
        raise ApplicationError(f"The MCP server's authorization server refused the code ({failure.error}).",
                               code="oauth_failed", status=400 if failure.error != "unreachable" else 503,
                               details={**details, "reason": failure.description}) from None
    with transaction.atomic():
        connection = McpAuthConnection.objects.select_for_update().get(pk=connection.pk)
        action = AuditEvent.Action.UPDATE if connection.token else AuditEvent.Action.CREATE
        _store_token(connection, token_kept(token))
        connection_audit(connection, action, Actor.for_client(row.client), "oauth_callback",
                         {"scopes": connection.scopes})
    return Finished(connection_id=str(connection.pk), provider=MCP_PROVIDER, end_user=row.end_user,
                    return_url=row.return_url, server_url=connection.server_url)


def _store_token(connection: McpAuthConnection, token: dict) -> None:
    connection.token = token
    connection.hint = formats.mask(token["access_token"])
    connection.scopes = str(token.get("scope") or connection.endpoints.get("scope") or "")[:2000]
    connection.status = Status.ACTIVE
    connection.access_expires_at = token_expiry(token)
    connection.refreshed_at = timezone.now()
    connection.save()


def _token_refreshed(connection: McpAuthConnection, refresh_token: str) -> dict:
    endpoint = _endpoint(connection, "token_endpoint")
    with _session(connection) as session:
        return oauth_client.token_checked(oauth_client.provider_call("refresh", lambda timeout: (
            session.refresh_token(endpoint, refresh_token=refresh_token, resource=connection.endpoints["resource"],
                                  timeout=timeout, allow_redirects=False))))


def mcp_token_for_use(*, client: ApiClient, end_user: str, server_url: str, actor: ActorLike, reason: str,
                      rejected_access_token: str | None = None) -> McpToken | None:
    """The end user's access token for the remote server, refreshed first when it has expired (or is about to) or
    when `rejected_access_token` (the one the server just answered 401 to) is still the stored one; audited as
    read_for_use. None when there is no authorized connection or its refresh was refused (the server's 401 then
    leads to a new authorization link)."""
    with transaction.atomic():
        connection = (McpAuthConnection.objects.select_for_update()
                      .filter(client=client, end_user=end_user, server_url=server_url).first())
        if connection is None or connection.status != Status.ACTIVE or not connection.token:
            return None
        if connection.refresh_due(rejected_access_token):
            connection_refresh_locked(connection, actor, reason, refresh=_token_refreshed, store=_store_token)
            if connection.status != Status.ACTIVE:
                return None
        connection.last_used_at = timezone.now()
        connection.save(update_fields=["last_used_at"])
        connection_audit(connection, AuditEvent.Action.READ_FOR_USE, actor, reason)
    return McpToken(server_url=server_url, access_token=connection.token["access_token"])


def mcp_connection_status(*, client: ApiClient, end_user: str, server_url: str) -> str | None:
    """pending, active or needs_reauth; None when the end user never started authorizing the server."""
    return (McpAuthConnection.objects.filter(client=client, end_user=end_user, server_url=server_url)
            .values_list("status", flat=True).first())


def mcp_connection_revoke_and_delete(connection: McpAuthConnection, *, actor: ActorLike,
                                     reason: str) -> dict[str, Any]:
    """Revoke the tokens where the authorization server publishes an RFC 7009 endpoint, then delete the
    connection (also when revocation fails: the user asked to forget it)."""
    revoked: bool | None = None
    token = McpAuthConnection.objects.get(pk=connection.pk).token or {}
    if connection.endpoints.get("revocation_endpoint") and token:
        try:
            endpoint = _endpoint(connection, "revocation_endpoint")
            with _session(connection) as session:
                for hint in ("refresh_token", "access_token"):
                    if token.get(hint):
                        response = oauth_client.provider_call("revocation", lambda timeout, hint=hint: (
                            session.revoke_token(endpoint, token=token[hint], token_type_hint=hint, timeout=timeout,
                                                 allow_redirects=False)))
                        revoked = response.status_code == 200 and revoked is not False
        except oauth_client.OAuthFailure as failure:
            logger.warning("revocation of an MCP server's token failed: %s", failure.error)
            revoked = False
    with transaction.atomic():
        connection_audit(connection, AuditEvent.Action.DELETE, actor, reason, {"revoked": revoked})
        McpAuthConnection.objects.filter(pk=connection.pk).delete()
    return {"mcp_connections": 1, "revoked": revoked}
