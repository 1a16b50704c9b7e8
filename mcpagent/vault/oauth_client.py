"""Talking to a provider's OAuth endpoints, through authlib's OAuth2Session (no hand-written OAuth): the
authorization URL with PKCE (S256), the code exchange, a refresh, a revocation (RFC 7009) and the userinfo call.

Endpoints are the registered OAuthApp's, else its provider's preset. Errors come back as OAuthFailure with the
provider's error code and description, never a token. Redirects are not followed: a token endpoint that redirects
is an error, not a hop to wherever it points.
"""

import logging
import re
from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings

from mcpagent.logging_filters import redact
from mcpagent.vault.models import OAuthApp
from mcpagent.vault.oauth_presets import PRESETS

logger = logging.getLogger("mcpagent.vault")


class OAuthFailure(Exception):
    """A provider refused or could not be reached. `error` is its OAuth error code (invalid_grant, ...) or
    "unreachable"; `description` its own words, redacted."""

    def __init__(self, error: str, description: str = ""):
        self.error = error or "oauth_error"
        self.description = redact(description or "")[:300]
        super().__init__(f"{self.error}: {self.description}" if self.description else self.error)


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    revocation: str
    userinfo: str
    scopes: str
    authorize_params: dict
    token_auth_method: str
    identity_fields: tuple[str, ...]
    revocation_style: str
    revocation_note: str
    scope_separator: str


def endpoints(app: OAuthApp) -> Endpoints:
    preset = PRESETS[app.provider]
    return Endpoints(
        authorization=app.authorization_endpoint or preset.authorization_endpoint,
        token=app.token_endpoint or preset.token_endpoint,
        revocation=app.revocation_endpoint or preset.revocation_endpoint,
        userinfo=app.userinfo_endpoint or preset.userinfo_endpoint,
        scopes=app.scopes or preset.scopes,
        authorize_params=dict(preset.authorize_params),
        token_auth_method=preset.token_auth_method,
        identity_fields=preset.identity_fields,
        revocation_style=preset.revocation_style,
        revocation_note=preset.revocation_note,
        scope_separator=preset.scope_separator,
    )


def new_code_verifier() -> str:
    # RFC 7636 4.1: 43 to 128 characters of [A-Za-z0-9-._~]; authlib's generator draws from letters and digits.
    return generate_token(64)


def scopes_split(scopes: str) -> list[str]:
    """Scopes as a list, whether separated by spaces (RFC 6749) or commas (Slack's and GitHub's token answers)."""
    return [scope for scope in re.split(r"[\s,]+", scopes or "") if scope]


def scopes_joined(base: str, extra: list[str], separator: str = " ") -> str:
    """The base scopes then the extra ones not already in them."""
    words = scopes_split(base)
    return separator.join([*words, *(scope for scope in dict.fromkeys(extra) if scope not in words)])


def _session(app: OAuthApp, *, redirect_uri: str | None = None, token: dict | None = None,
             extra_scopes: list[str] | None = None) -> OAuth2Session:
    ends = endpoints(app)
    session = OAuth2Session(
        client_id=app.client_id, client_secret=app.client_secret or None,
        scope=scopes_joined(ends.scopes, extra_scopes or [], ends.scope_separator) or None,
        redirect_uri=redirect_uri, code_challenge_method="S256", token_endpoint_auth_method=ends.token_auth_method,
        revocation_endpoint_auth_method=ends.token_auth_method, token=token,
    )
    session.max_redirects = 0
    return session


def provider_call(what: str, action):
    timeout = settings.OAUTH_HTTP_TIMEOUT_SECONDS
    try:
        return action(timeout)
    except OAuthError as exc:
        raise OAuthFailure(exc.error, exc.description or "") from None
    except requests.RequestException as exc:
        logger.info("OAuth %s failed: %s", what, type(exc).__name__)
        raise OAuthFailure("unreachable", f"the provider could not be reached ({type(exc).__name__})") from None
    except ValueError as exc:  # not JSON, or a token answer without access_token
        raise OAuthFailure("invalid_response", str(exc)) from None


def authorization_url(app: OAuthApp, *, redirect_uri: str, state: str, code_verifier: str,
                      extra_scopes: list[str] | None = None) -> str:
    """The provider's authorization URL asking for the app's scopes and `extra_scopes`."""
    ends = endpoints(app)
    with _session(app, redirect_uri=redirect_uri, extra_scopes=extra_scopes) as session:
        url, _ = session.create_authorization_url(ends.authorization, state=state, code_verifier=code_verifier,
                                                  **ends.authorize_params)
    return url


def token_checked(token: dict) -> dict:
    if "error" in token:
        raise OAuthFailure(str(token.get("error")), str(token.get("error_description") or ""))
    if not token.get("access_token"):
        raise OAuthFailure("invalid_response", "the token answer has no access_token")
    return dict(token)


def exchange_code(app: OAuthApp, *, code: str, redirect_uri: str, code_verifier: str) -> dict:
    """The token answer for an authorization code (access_token, refresh_token, expires_at, scope...)."""
    ends = endpoints(app)
    with _session(app, redirect_uri=redirect_uri) as session:
        return token_checked(provider_call("code exchange", lambda timeout: session.fetch_token(
            ends.token, grant_type="authorization_code", code=code, code_verifier=code_verifier, timeout=timeout,
            allow_redirects=False)))


def refresh(app: OAuthApp, *, refresh_token: str) -> dict:
    ends = endpoints(app)
    with _session(app) as session:
        return token_checked(provider_call("refresh", lambda timeout: session.refresh_token(
            ends.token, refresh_token=refresh_token, timeout=timeout, allow_redirects=False)))


def revoke(app: OAuthApp, *, token: str, hint: str) -> bool:
    """Revoke at the app's RFC 7009 endpoint; False when there is none. Raises OAuthFailure when it fails."""
    ends = endpoints(app)
    if not ends.revocation:
        return False
    with _session(app) as session:
        response = provider_call("revocation", lambda timeout: session.revoke_token(
            ends.revocation, token=token, token_type_hint=hint, timeout=timeout, allow_redirects=False))
    if response.status_code != 200:
        raise OAuthFailure("revocation_failed", f"the provider answered HTTP {response.status_code}")
    return True


def userinfo(app: OAuthApp, *, access_token: str) -> tuple[int, str]:
    """(HTTP status, who the account is) from the provider's userinfo endpoint; (0, "") when it has none."""
    ends = endpoints(app)
    if not ends.userinfo:
        return 0, ""
    response = provider_call("userinfo", lambda timeout: requests.get(
        ends.userinfo, headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        timeout=timeout, allow_redirects=False))
    if response.status_code != 200:
        return response.status_code, ""
    try:
        body = response.json()
    except ValueError:
        return response.status_code, ""
    who = next((str(body[f]) for f in ends.identity_fields if isinstance(body, dict) and body.get(f)), "")
    return 200, redact(who)[:200]
