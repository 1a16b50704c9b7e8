"""Connected accounts: what a client (for one end user) has connected, one entry per service.

A connection is every live vault entry of one client, end user and server (one per key, which the sessions and
agents using it refer to): listed with masked identities only, deleted as a whole. Its id is derived from
(client, end user, server), so it stays the same while values are rotated, and another client's or end user's
id is never found (404). An account connected by OAuth (mcpagent.vault.oauth_flow) is one entry of kind "oauth"
for its provider, with its own id; deleting it revokes its tokens at the provider first. A remote MCP server
authorized by MCP authorization (mcpagent.vault.mcp_auth_flow) is one entry of kind "mcp_oauth" whose service is
the server's URL; deleting it revokes its tokens where its authorization server publishes a revocation endpoint.
"""

import uuid
from typing import Any

from django.db import transaction

from mcpagent.errors import NotFound
from mcpagent.models import ApiClient
from mcpagent.vault.audit import ActorLike, audit_event
from mcpagent.vault.holders import hold, live, lock_entries, session_expiry, uuid_or_none
from mcpagent.vault.mcp_auth_flow import mcp_connection_revoke_and_delete
from mcpagent.vault.models import AuditEvent, Credential, McpAuthConnection, OAuthConnection, StoredFile
from mcpagent.vault.oauth_tokens import connection_revoke_and_delete
from mcpagent.vault.store import delete_rows


def connection_id(*, client_id: Any, end_user: str, server: str) -> str:
    return str(uuid.uuid5(uuid.UUID(str(client_id)), f"{end_user}\x00{server}"))


def _rows(client: ApiClient, end_user: str):
    credentials = Credential.objects.filter(client=client, end_user=end_user).filter(live()).defer("value")
    files = StoredFile.objects.filter(client=client, end_user=end_user).filter(live()).defer("content")
    return credentials.prefetch_related("references"), files.prefetch_related("references")


def _kind(credentials: list, files: list) -> str:
    if any(row.kind == "oauth" for row in credentials):
        return "oauth"
    return "api_key" if credentials else "file"


def connections_list(*, client: ApiClient, end_user: str = "") -> list[dict]:
    """The client's connections for `end_user` ("" for none), by service: names and masked hints only."""
    credentials, files = _rows(client, end_user)
    by_server: dict[str, dict[str, list]] = {}
    for row in credentials:
        by_server.setdefault(row.server, {"credentials": [], "files": []})["credentials"].append(row)
    for row in files:
        if row.server:
            by_server.setdefault(row.server, {"credentials": [], "files": []})["files"].append(row)
    connections = []
    for server, held in sorted(by_server.items()):
        rows = held["credentials"] + held["files"]
        newest: dict[str, Any] = {}
        for row in sorted(rows, key=lambda r: r.updated_at, reverse=True):
            newest.setdefault(row.key, row)
        used = [row.last_used_at for row in rows if row.last_used_at]
        expiries = [row.expires_at for row in rows if row.expires_at]
        connections.append({
            "id": connection_id(client_id=client.pk, end_user=end_user, server=server),
            "service": server,
            "end_user": end_user,
            "kind": _kind(held["credentials"], held["files"]),
            "identity": {key: ((f"{row.identity} ({row.hint})" if row.identity else row.hint)
                               if isinstance(row, Credential) else row.filename)
                         for key, row in sorted(newest.items())},
            "status": "unverified" if any(getattr(r, "verification", "") == "unverified" for r in rows) else "active",
            "last_used_at": max(used) if used else None,
            "expires_at": None if len(expiries) < len(rows) else min(expiries),
            "agents": sorted({str(ref.agent_id) for row in rows for ref in row.references.all() if ref.agent_id}),
        })
    return connections + _oauth_connections(client, end_user) + _mcp_connections(client, end_user)


def _oauth_connections(client: ApiClient, end_user: str) -> list[dict]:
    rows = OAuthConnection.objects.filter(client=client, end_user=end_user).defer("token").order_by("provider")
    return [{
        "id": str(row.pk), "service": row.provider, "end_user": end_user, "kind": "oauth",
        "identity": {"account": f"{row.identity} ({row.hint})" if row.identity else row.hint},
        "status": row.status, "last_used_at": row.last_used_at, "expires_at": None, "agents": [],
    } for row in rows]


def _mcp_connections(client: ApiClient, end_user: str) -> list[dict]:
    rows = (McpAuthConnection.objects.filter(client=client, end_user=end_user).exclude(status="pending")
            .defer("token", "registration").order_by("server_url"))
    return [{
        "id": str(row.pk), "service": row.server_url, "end_user": end_user, "kind": "mcp_oauth",
        "identity": {"account": row.hint, "issuer": row.issuer},
        "status": row.status, "last_used_at": row.last_used_at, "expires_at": None, "agents": [],
    } for row in rows]


def connection_delete(*, client: ApiClient, end_user: str = "", connection: Any, actor: ActorLike,
                      reason: str) -> dict[str, Any]:
    """Delete every value and file of the connection (audited); an OAuth connection's tokens are revoked at the
    provider first. Agents that used them then fail to start that server and say which value is missing.
    Unknown, another client's or another end user's: NotFound."""
    wanted = uuid_or_none(connection)
    oauth = OAuthConnection.objects.filter(client=client, end_user=end_user, pk=wanted).defer("token").first() \
        if wanted else None
    if oauth is not None:
        return connection_revoke_and_delete(oauth, actor=actor, reason=reason)
    remote = McpAuthConnection.objects.filter(client=client, end_user=end_user, pk=wanted).defer("token").first() \
        if wanted else None
    if remote is not None:
        return mcp_connection_revoke_and_delete(remote, actor=actor, reason=reason)
    return _credentials_delete(client, end_user, connection, wanted, actor, reason)


@transaction.atomic
def _credentials_delete(client: ApiClient, end_user: str, connection: Any, wanted: str | None, actor: ActorLike,
                        reason: str) -> dict[str, int]:
    credentials, files = _rows(client, end_user)
    servers = {s for s in [*credentials.values_list("server", flat=True), *files.values_list("server", flat=True)]
               if connection_id(client_id=client.pk, end_user=end_user, server=s) == wanted}
    if not servers:
        raise NotFound("Connection not found.", details={"connection_id": str(connection)})
    server = servers.pop()
    return delete_rows(credentials.filter(server=server), files.filter(server=server), AuditEvent.Action.DELETE,
                       actor, reason, {"connection": wanted})


@transaction.atomic
def connections_reuse(*, client: ApiClient, session: Any, servers: list[str], actor: ActorLike,
                      reason: str) -> dict[str, list[str]]:
    """Progressive collection: let `session` refer to the live values and files its client already connected
    for the session's end user on `servers`, for every key the session does not refer to yet, so a second agent
    for the same services asks for nothing. Nothing is copied: the session points to the same entries (kept
    alive at least CREDENTIAL_TTL_HOURS), audited as `update` with `reused_by_session`. Returns {server: [keys]}
    reused (names only)."""
    end_user = str(getattr(session, "end_user", "") or "")
    lock_entries(client=client, end_user=end_user)
    reused: dict[str, list[str]] = {}
    events = []
    for model, deferred in ((Credential, "value"), (StoredFile, "content")):
        rows = (model.objects.filter(client=client, end_user=end_user, server__in=servers).exclude(key="")
                .filter(live()).defer(deferred).order_by("server", "key"))
        for row in rows:
            if hold(row, session=session, expires_at=session_expiry()):
                events.append(audit_event(row, AuditEvent.Action.UPDATE, actor, reason,
                                          {"reused_by_session": str(session.pk)}, session_id=session.pk))
                reused.setdefault(row.server, []).append(row.key)
    AuditEvent.objects.bulk_create(events)
    return reused
