"""Validation of catalogue servers whose credentials come from the end user's OAuth connection: a server that
refuses them (credentials_rejected: the provider revoked the access token early, or it expired sooner than it
said) is started once more after the connection's tokens are refreshed, as remote_auth does for remote MCP servers.
A refresh the provider refuses turns the failure into oauth_reauth_needed: the end user must authorize again."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from agents_app.mcp_config import LaunchSpec
from agents_app.oauth_rules import oauth_refresh_after_rejection
from agents_app.runtime import ServerCheck, validate_servers
from agents_app.secrets import credential_scope
from mcpagent.errors import ApplicationError

Relaunch = Callable[[set[str]], AbstractContextManager[list[LaunchSpec]]]


def validation_retry_after_oauth_refresh(agent: Any, results: dict[str, ServerCheck], *,
                                         relaunch: Relaunch) -> dict[str, ServerCheck]:
    """{server: new check} for the servers that rejected their OAuth-supplied credentials. `relaunch(names)`
    prepares those servers again (their credentials read anew, files written anew) for the block."""
    entries = agent.mcp_config.get("mcpServers", {})
    retry: set[str] = set()
    checks: dict[str, ServerCheck] = {}
    for name, result in results.items():
        if result.ok or (result.error or {}).get("code") != "credentials_rejected" or name not in entries:
            continue
        try:
            if oauth_refresh_after_rejection(client=agent.client, end_user=agent.end_user,
                                             server=credential_scope(name, entries[name]), actor=agent.client,
                                             reason="agent_validate"):
                retry.add(name)
        except ApplicationError as exc:
            checks[name] = _failed(name, result.seconds, exc)
    if retry:
        try:
            with relaunch(retry) as specs:
                checks.update(validate_servers(specs))
        except ApplicationError as exc:  # a value deleted meanwhile: the first outcome stands
            checks.update({name: _failed(name, results[name].seconds, exc)
                           for name in retry if (exc.details or {}).get("server") in (None, name)})
    return checks


def _failed(name: str, seconds: float, exc: ApplicationError) -> ServerCheck:
    return ServerCheck(server=name, ok=False, seconds=seconds, error={
        "server": name, "code": exc.code, "message": exc.message, "hint": (exc.details or {}).get("hint", "")})
