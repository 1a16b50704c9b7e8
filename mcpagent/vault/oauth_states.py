"""Authorizations in progress, for provider OAuth and MCP authorization alike: a fresh `state` (kept only as its
SHA-256) bound to the client, the session and the end user, with its PKCE verifier (kept encrypted), spent exactly
once before it expires; and the checked `return_url` the user's browser goes back to."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient
from mcpagent.vault.models import OAuthState

MAX_RETURN_URL = 2000


@dataclass(frozen=True)
class Finished:
    connection_id: str
    provider: str
    end_user: str
    return_url: str  # "" when the client gave none
    server_url: str = ""  # a remote MCP server's authorization: its URL


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


def return_url_check(*, client: ApiClient, return_url: str) -> str:
    """`return_url` if it is an absolute http(s) URL on a host the client registered; else a 400 (nothing kept)."""
    if not return_url:
        return ""
    parts = urlsplit(return_url) if len(return_url) <= MAX_RETURN_URL else None
    host = (parts.hostname or "").lower() if parts else ""
    allowed = {str(h).lower() for h in client.oauth_return_hosts or []}
    if not parts or parts.scheme not in ("https", "http") or not host or host not in allowed or parts.username:
        raise ApplicationError(
            "return_url must be an http(s) URL on a host registered for this API client.",
            code="return_url_not_allowed", status=400,
            details={"field": "return_url", "allowed_hosts": sorted(allowed)})
    return return_url


def state_create(*, client: ApiClient, end_user: str, session_id: Any, provider: str, code_verifier: str,
                 redirect_uri: str, return_url: str, mcp_connection: Any = None) -> str:
    """A new one-time state for an authorization (valid OAUTH_STATE_TTL_SECONDS); only its hash is stored."""
    state = secrets.token_urlsafe(32)
    OAuthState.objects.create(
        state_hash=state_hash(state), client=client, end_user=end_user, session_id=session_id, provider=provider,
        mcp_connection=mcp_connection, code_verifier=code_verifier, redirect_uri=redirect_uri, return_url=return_url,
        expires_at=timezone.now() + timedelta(seconds=settings.OAUTH_STATE_TTL_SECONDS),
    )
    return state


def state_spend(state: str) -> OAuthState:
    """The state's row, marked used in one conditional UPDATE (two callbacks with one state: one wins)."""
    if not isinstance(state, str) or not 20 <= len(state) <= 200:
        raise bad_state()
    digest = state_hash(state)
    with transaction.atomic():
        spent = OAuthState.objects.filter(state_hash=digest, used_at__isnull=True,
                                          expires_at__gt=timezone.now()).update(used_at=timezone.now())
        if not spent:
            raise bad_state()
        return OAuthState.objects.select_related("client", "mcp_connection").get(state_hash=digest)


def bad_state() -> ApplicationError:
    return ApplicationError("This authorization link is unknown, used already or expired; ask for a new one.",
                            code="invalid_state", status=400)
