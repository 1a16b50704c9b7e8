"""Live checks of a token before it is stored, where the provider has a cheap identity call.

Slack `auth.test`, GitHub `/user`, Notion `/users/me`, Google `userinfo`, Stripe `/v1/account`, matched on the
credential's name. A token the provider rejects (401/403, or Slack's `ok: false` with an auth error) is refused
with the provider's reason; a network failure, a timeout or any other answer stores the token marked
`unverified`. Base URLs come from settings (CREDENTIAL_VERIFY_*_URL) so tests point them at fake providers;
CREDENTIAL_VERIFY=0 turns the checks off. Reasons never contain the token.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from django.conf import settings

from mcpagent.logging_filters import redact

logger = logging.getLogger("mcpagent.vault")

VERIFIED = "verified"
UNVERIFIED = "unverified"
_SLACK_AUTH_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


@dataclass(frozen=True)
class Outcome:
    status: str  # VERIFIED, UNVERIFIED, or "rejected"
    reason: str = ""
    identity: str = ""  # who the token is (a login, a team), never a secret


@dataclass(frozen=True)
class Provider:
    name: str
    key_re: re.Pattern
    setting: str
    check: Callable[[httpx.Client, str, str], Outcome]


def _message(response: httpx.Response, *paths: tuple[str, ...]) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    for path in paths:
        node = body
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and node:
            return node
    return f"HTTP {response.status_code}"


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _http_check(url_path: str, reason_paths: tuple, identity_paths: tuple, headers: dict | None = None):
    def check(client: httpx.Client, base: str, token: str) -> Outcome:
        response = client.get(base.rstrip("/") + url_path, headers=_bearer(token) | (headers or {}))
        if response.status_code in (401, 403):
            return Outcome("rejected", _message(response, *reason_paths))
        if response.status_code == 200:
            return Outcome(VERIFIED, identity=_message(response, *identity_paths) if identity_paths else "")
        return Outcome(UNVERIFIED, f"the provider answered HTTP {response.status_code}")

    return check


def _slack(client: httpx.Client, base: str, token: str) -> Outcome:
    response = client.post(base.rstrip("/") + "/auth.test", headers=_bearer(token))
    if response.status_code != 200:
        return Outcome(UNVERIFIED, f"the provider answered HTTP {response.status_code}")
    body = response.json()
    if body.get("ok"):
        return Outcome(VERIFIED, identity=str(body.get("team") or body.get("user") or ""))
    error = str(body.get("error") or "unknown_error")
    return Outcome("rejected" if error in _SLACK_AUTH_ERRORS else UNVERIFIED, error)


PROVIDERS = [
    Provider("Slack", re.compile(r"^SLACK.*TOKEN$", re.I), "CREDENTIAL_VERIFY_SLACK_URL", _slack),
    Provider("GitHub", re.compile(r"^(GITHUB|GH).*(TOKEN|PAT)$", re.I), "CREDENTIAL_VERIFY_GITHUB_URL",
             _http_check("/user", (("message",),), (("login",),))),
    Provider("Notion", re.compile(r"^NOTION.*(TOKEN|KEY)$", re.I), "CREDENTIAL_VERIFY_NOTION_URL",
             _http_check("/users/me", (("message",),), (("name",), ("id",)), {"Notion-Version": "2022-06-28"})),
    Provider("Google", re.compile(r"^GOOGLE.*ACCESS_TOKEN$", re.I), "CREDENTIAL_VERIFY_GOOGLE_URL",
             _http_check("/userinfo", (("error_description",), ("error",)), (("email",),))),
    Provider("Stripe", re.compile(r"^STRIPE.*(SECRET|API)_KEY$", re.I), "CREDENTIAL_VERIFY_STRIPE_URL",
             _http_check("/v1/account", (("error", "message"),), (("id",),))),
]


def provider_for(key: str) -> Provider | None:
    return next((p for p in PROVIDERS if p.key_re.match(key)), None)


def _clean(reason: str, token: str) -> str:
    """The provider's reason, short, with the token (or anything shaped like one) masked."""
    return redact(reason.replace(token, "***"))[:200]


def verify_values(values: dict[str, str]) -> dict[str, Outcome]:
    """{key: Outcome} for the values a provider can check (others are left out)."""
    if not settings.CREDENTIAL_VERIFY:
        return {}
    outcomes: dict[str, Outcome] = {}
    checks = [(key, value, provider) for key, value in values.items() if (provider := provider_for(key))]
    if not checks:
        return outcomes
    with httpx.Client(timeout=settings.CREDENTIAL_VERIFY_TIMEOUT_SECONDS, follow_redirects=False) as client:
        for key, value, provider in checks:
            try:
                outcome = provider.check(client, getattr(settings, provider.setting), value)
            except (httpx.HTTPError, ValueError) as exc:
                logger.info("could not verify %s with %s: %s", key, provider.name, type(exc).__name__)
                outcome = Outcome(UNVERIFIED, f"{provider.name} could not be reached to check it")
            outcomes[key] = Outcome(outcome.status, _clean(outcome.reason, value), _clean(outcome.identity, value))
            if outcome.status == "rejected":
                outcomes[key] = Outcome("rejected", f"was rejected by {provider.name}: {outcomes[key].reason}")
    return outcomes
