"""Catalogue servers whose settings an OAuth connection supplies (config/config.json `oauth.servers`).

A rule names the provider and, per credential key of the server, where its value comes from: the connection's
`access_token` or `refresh_token`, the OAuth app's `client_id` or `client_secret`, or `google_authorized_user_file`
(a Google authorized-user JSON written for the start; the key gets its path). A rule applies only while staff have
an active OAuth app for its provider: otherwise the keys are asked for like any other credential.

A rule's `scopes` are what its server needs from the provider. The link for a plan asks for the union of the
planned servers' scopes (with the app's base scopes, and those the connection already holds); a connection whose
granted scopes lack one a planned server needs gets a new link (incremental authorization) instead of counting as
connected. A connection whose token answer named no scope (RFC 6749 5.1: then it is what was asked) counts as
holding them.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

from mcpagent.errors import ApplicationError
from mcpagent.vault.models import OAuthConnection
from mcpagent.vault.oauth_client import scopes_split
from mcpagent.vault.oauth_tokens import TokenForUse, app_for, connection_find, token_for_use

SOURCES = {"access_token", "refresh_token", "client_id", "client_secret", "google_authorized_user_file"}
FILE_SOURCES = {"google_authorized_user_file"}


@dataclass(frozen=True)
class OAuthRule:
    server: str
    provider: str
    values: dict[str, str]  # credential key -> source
    scopes: tuple[str, ...] = ()  # what the server needs from the provider

    @property
    def value_keys(self) -> list[str]:
        return sorted(k for k, source in self.values.items() if source not in FILE_SOURCES)

    @property
    def file_keys(self) -> list[str]:
        return sorted(k for k, source in self.values.items() if source in FILE_SOURCES)


@lru_cache(maxsize=1)
def _rules() -> dict[str, OAuthRule]:
    data = json.loads((Path(settings.BASE_DIR) / "config" / "config.json").read_text())
    rules = {}
    for server, raw in (data.get("oauth") or {}).get("servers", {}).items():
        values = {str(k): str(v) for k, v in raw.get("values", {}).items()}
        unknown = set(values.values()) - SOURCES
        if unknown:
            raise ValueError(f"config.json oauth.servers.{server}: unknown value sources {sorted(unknown)}")
        scopes = tuple(str(raw.get("scopes") or "").split())
        rules[server] = OAuthRule(server=server, provider=str(raw["provider"]), values=values, scopes=scopes)
    return rules


def oauth_rule(server: str) -> OAuthRule | None:
    """The rule for a catalogue server, when its provider has an active OAuth app; else None."""
    rule = _rules().get(server)
    return rule if rule is not None and app_for(rule.provider) is not None else None


def _granted(connection: OAuthConnection | None) -> set[str] | None:
    """The scopes the connection holds; None when the provider did not say (then it holds what was asked)."""
    granted = set(scopes_split(connection.scopes)) if connection is not None else set()
    return granted or None


def oauth_needs(*, client: Any, end_user: str, server_slugs: list[str]) -> tuple[dict[str, set[str]], list[dict]]:
    """({server: keys an OAuth connection covers}, [authorizations still needed]). Covered keys are never asked
    for; an authorization is needed per provider with no active connection for this client and end user, or whose
    connection lacks a scope a planned server needs: {provider, mcp_servers, credential_keys, scopes, reason:
    not_connected | needs_reauth | missing_scopes}. `scopes`: what the link asks for besides the app's base ones
    (every planned server's of that provider, and those already granted)."""
    covered: dict[str, set[str]] = {}
    needed: dict[str, dict] = {}
    wanted: dict[str, set[str]] = {}
    rules = [rule for rule in map(oauth_rule, server_slugs) if rule is not None]
    for rule in rules:
        wanted.setdefault(rule.provider, set()).update(rule.scopes)
    for rule in rules:
        slug = rule.server
        covered[slug] = set(rule.values)
        connection = connection_find(client=client, end_user=end_user, provider=rule.provider)
        active = connection is not None and connection.status == OAuthConnection.Status.ACTIVE
        granted = _granted(connection)
        if active and (granted is None or set(rule.scopes) <= granted):
            continue
        reason = "missing_scopes" if active else "needs_reauth" if connection is not None else "not_connected"
        entry = needed.setdefault(rule.provider, {
            "provider": rule.provider, "mcp_servers": [], "credential_keys": [], "reason": reason,
            "scopes": sorted(wanted[rule.provider] | (granted or set()))})
        entry["mcp_servers"].append(slug)
        entry["credential_keys"] += [f"{slug}:{key}" for key in sorted(rule.values)]
    return covered, list(needed.values())


def oauth_connected_keys(*, client: Any, end_user: str, server: str) -> tuple[list[str], list[str]]:
    """(value keys, file keys) of `server` that the end user's active connection supplies ([] and [] if none)."""
    rule = oauth_rule(server)
    if rule is None:
        return [], []
    connection = connection_find(client=client, end_user=end_user, provider=rule.provider)
    if connection is None or connection.status != OAuthConnection.Status.ACTIVE:
        return [], []
    return rule.value_keys, rule.file_keys


def _value(token: TokenForUse, source: str) -> str:
    return str(getattr(token, source))


def google_authorized_user(token: TokenForUse) -> bytes:
    """Google's authorized-user credentials file (what `gcloud auth application-default login` writes)."""
    return json.dumps({"type": "authorized_user", "client_id": token.client_id,
                       "client_secret": token.client_secret, "refresh_token": token.refresh_token}).encode()


def oauth_values_for_use(*, client: Any, end_user: str, server: str, actor: Any,
                         reason: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """({key: value}, {key: file content}) for one start of `server`, from the end user's connection (its access
    token refreshed first when it has expired). ({}, {}) when no rule applies. No usable connection: 409
    oauth_reauth_needed, naming the provider."""
    rule = oauth_rule(server)
    if rule is None:
        return {}, {}
    try:
        token = token_for_use(client=client, end_user=end_user, provider=rule.provider, actor=actor, reason=reason)
    except ApplicationError as exc:
        # Name the server that cannot start (an agent's failure lists servers), keeping the provider.
        raise ApplicationError(exc.message, code=exc.code, status=exc.status,
                               details={**(exc.details or {}), "server": server}) from None
    values = {key: _value(token, source) for key, source in rule.values.items() if source not in FILE_SOURCES}
    files = {key: google_authorized_user(token) for key, source in rule.values.items()
             if source == "google_authorized_user_file"}
    return values, files


def oauth_refresh_after_rejection(*, client: Any, end_user: str, server: str, actor: Any, reason: str) -> bool:
    """After `server` refused the credentials the end user's OAuth connection supplied (a token the provider
    revoked or expired early): refresh the connection once, its stored access token as the rejected one. True when
    new tokens are stored, so a retry may succeed; False when no active connection supplies the server (values
    the user pasted are theirs to fix). A refresh the provider refuses: 409 oauth_reauth_needed (the connection is
    then needs_reauth, and the next chat reply offers a new link)."""
    rule = oauth_rule(server)
    if rule is None:
        return False
    connection = connection_find(client=client, end_user=end_user, provider=rule.provider)
    if connection is None or connection.status != OAuthConnection.Status.ACTIVE:
        return False
    current = token_for_use(client=client, end_user=end_user, provider=rule.provider, actor=actor, reason=reason)
    try:
        refreshed = token_for_use(client=client, end_user=end_user, provider=rule.provider, actor=actor,
                                  reason=reason, rejected_access_token=current.access_token)
    except ApplicationError as exc:
        raise ApplicationError(exc.message, code=exc.code, status=exc.status,
                               details={**(exc.details or {}), "server": server}) from None
    return refreshed.access_token != current.access_token
