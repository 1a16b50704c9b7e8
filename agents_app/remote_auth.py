"""Remote MCP servers that use MCP authorization, seen from an agent: validation that retries once with a refreshed
token when a server refuses the stored one, and the authorization links for the servers of a failed agent that
need the end user to sign in. Discovery and registration go over the network once, when the failure is known
(authorization_prepare, or authorization_links given a redirect_uri); each answer then makes fresh links from what
the vault stored, without network (each link works once, for OAUTH_STATE_TTL_SECONDS)."""

import logging
from typing import Any

from agents_app import mcp_config
from agents_app.mcp_config import LaunchSpec
from agents_app.runtime import ServerCheck, validate_servers
from agents_app.secrets import remote_token_apply
from mcpagent.errors import ApplicationError
from mcpagent.vault.mcp_auth_flow import (
    mcp_authorization_link, mcp_authorization_prepare, mcp_connection_status,
)

logger = logging.getLogger(__name__)
AUTHORIZATION_REQUIRED = "authorization_required"


def validation_retry_after_refresh(agent: Any, specs: list[LaunchSpec],
                                   results: dict[str, ServerCheck]) -> dict[str, ServerCheck]:
    """{server: new check} for the servers that refused the vault's token with a 401 and whose token could be
    refreshed: validated once more with the new one (a token revoked early, or expired sooner than it said)."""
    retry = []
    for spec in specs:
        result = results.get(spec.name)
        if result is None or result.ok or not spec.vault_bearer or (result.error or {}).get("code") != \
                AUTHORIZATION_REQUIRED:
            continue
        rejected = spec.headers.get("Authorization", "").removeprefix("Bearer ")
        if remote_token_apply(agent=agent, spec=spec, actor=agent.client, reason="agent_validate",
                              rejected_access_token=rejected) \
                and spec.headers.get("Authorization") != f"Bearer {rejected}":
            retry.append(spec)
    return validate_servers(retry) if retry else {}


def _failures(agent: Any) -> list[dict]:
    error = agent.error or {}
    return [f for f in error.get("servers") or [error] if isinstance(f, dict)]


def _servers_to_authorize(agent: Any) -> list[tuple[str, str]]:
    """[(server name, url)] of the failed `agent`'s servers that asked for authorization. A server whose URL
    carries the user's settings is left out (its URL is only known at start)."""
    servers = agent.mcp_config.get("mcpServers", {})
    found = []
    for failure in _failures(agent):
        entry = servers.get(failure.get("server") or "")
        if failure.get("code") != AUTHORIZATION_REQUIRED or not entry or entry.get(mcp_config.URL_VARS) \
                or not isinstance(entry.get("url"), str):
            continue
        found.append((failure["server"], entry["url"]))
    return found


def authorization_prepare(agent: Any, *, redirect_uri: str) -> None:
    """Discover and register (network) for each server of the failed `agent` that asked for authorization, so
    that links can be made later without network. One whose metadata cannot be used now is skipped (the agent's
    error already says what failed)."""
    for name, url in _servers_to_authorize(agent):
        try:
            mcp_authorization_prepare(client=agent.client, end_user=agent.end_user, server_url=url,
                                      redirect_uri=redirect_uri)
        except ApplicationError as exc:
            if exc.code != "mcp_authorization_unavailable":
                raise
            logger.info("agent %s: no authorization link for %s: %s", agent.id, name, exc.message)


def authorization_links(agent: Any, *, redirect_uri: str | None = None, session_id: Any = None,
                        return_url: str = "") -> list[dict]:
    """[{provider: "mcp", mcp_servers, server_url, reason, credential_keys, authorization_url}] for each server of
    the failed `agent` that needs the end user to authorize it, made from what the vault stored. With
    `redirect_uri` (a POST's answer) discovery and registration are done first; without it (a GET) nothing goes
    over the network, and a server not prepared yet gets no link."""
    if redirect_uri is not None:
        authorization_prepare(agent, redirect_uri=redirect_uri)
    links = []
    for name, url in _servers_to_authorize(agent):
        link = mcp_authorization_link(client=agent.client, end_user=agent.end_user,
                                      session_id=session_id or agent.session_id, server_url=url,
                                      return_url=return_url)
        if link:
            status = mcp_connection_status(client=agent.client, end_user=agent.end_user, server_url=url)
            links.append({"provider": "mcp", "mcp_servers": [name], "server_url": url, "credential_keys": [],
                          "authorization_url": link,
                          "reason": "needs_reauth" if status in ("active", "needs_reauth") else "not_connected"})
    return links
