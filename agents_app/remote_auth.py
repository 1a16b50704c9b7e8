"""Remote MCP servers that use MCP authorization, seen from an agent: validation that retries once with a refreshed
token when a server refuses the stored one, and the authorization links for the servers of a failed agent that
need the end user to sign in (made fresh for each answer: each works once, for OAUTH_STATE_TTL_SECONDS)."""

import logging
from typing import Any

from agents_app import mcp_config
from agents_app.mcp_config import LaunchSpec
from agents_app.runtime import ServerCheck, validate_servers
from agents_app.secrets import remote_token_apply
from mcpagent.errors import ApplicationError
from mcpagent.vault.mcp_auth_flow import mcp_authorization_start, mcp_connection_status

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


def authorization_links(agent: Any, *, redirect_uri: str, session_id: Any = None,
                        return_url: str = "") -> list[dict]:
    """[{provider: "mcp", mcp_servers, server_url, reason, credential_keys, authorization_url}] for each server of
    the failed `agent` that needs the end user to authorize it. A server whose URL carries the user's settings is
    left out (its URL is only known at start), and so is one whose authorization metadata cannot be used now (the
    agent's error already says what failed)."""
    links = []
    servers = agent.mcp_config.get("mcpServers", {})
    for failure in _failures(agent):
        entry = servers.get(failure.get("server") or "")
        if failure.get("code") != AUTHORIZATION_REQUIRED or not entry or entry.get(mcp_config.URL_VARS) \
                or not isinstance(entry.get("url"), str):
            continue
        try:
            url = mcp_authorization_start(client=agent.client, end_user=agent.end_user,
                                          session_id=session_id or agent.session_id, server_url=entry["url"],
                                          redirect_uri=redirect_uri, return_url=return_url)
        except ApplicationError as exc:
            if exc.code != "mcp_authorization_unavailable":
                raise
            logger.info("agent %s: no authorization link for %s: %s", agent.id, failure.get("server"), exc.message)
            continue
        if url:
            status = mcp_connection_status(client=agent.client, end_user=agent.end_user, server_url=entry["url"])
            links.append({"provider": "mcp", "mcp_servers": [failure["server"]], "server_url": entry["url"],
                          "credential_keys": [], "authorization_url": url,
                          "reason": "needs_reauth" if status in ("active", "needs_reauth") else "not_connected"})
    return links
