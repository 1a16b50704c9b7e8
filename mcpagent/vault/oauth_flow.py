"""The authorization code flow with PKCE (S256): a link for one end user to connect a provider, and its callback.

`authorization_start` makes a fresh `state` (kept only as its SHA-256) bound to the client, the session and the
end user, with a PKCE verifier (kept encrypted), and returns the provider's authorization URL. `authorization_finish`
spends the state exactly once (an unknown, used or expired one changes nothing), exchanges the code with the
verifier, and stores the tokens as the end user's OAuth connection. A `return_url` must be on a host the API
client registered (ApiClient.oauth_return_hosts); it is where the user's browser goes afterwards.
"""

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient
from mcpagent.vault import oauth_client
from mcpagent.vault.audit import Actor
from mcpagent.vault.models import OAuthState
from mcpagent.vault.oauth_tokens import app_for, connection_save, identity_for

logger = logging.getLogger("mcpagent.vault")
MAX_RETURN_URL = 2000


@dataclass(frozen=True)
class Finished:
    connection_id: str
    provider: str
    end_user: str
    return_url: str  # "" when the client gave none


def _hash(state: str) -> str:
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


def authorization_start(*, client: ApiClient, end_user: str, session_id: Any, provider: str, redirect_uri: str,
                        return_url: str = "") -> str:
    """A new authorization URL for `provider` (an active OAuthApp must exist). The link works once, for
    OAUTH_STATE_TTL_SECONDS."""
    app = app_for(provider)
    if app is None:
        raise ApplicationError(f"No OAuth app is registered for {provider}.", code="oauth_not_configured",
                               status=409, details={"provider": provider})
    return_url = return_url_check(client=client, return_url=return_url)
    state = secrets.token_urlsafe(32)
    verifier = oauth_client.new_code_verifier()
    OAuthState.objects.create(
        state_hash=_hash(state), client=client, end_user=end_user, session_id=session_id, provider=provider,
        code_verifier=verifier, redirect_uri=redirect_uri, return_url=return_url,
        expires_at=timezone.now() + timedelta(seconds=settings.OAUTH_STATE_TTL_SECONDS),
    )
    return oauth_client.authorization_url(app, redirect_uri=redirect_uri, state=state, code_verifier=verifier)


def _spend(state: str) -> OAuthState:
    """The state's row, marked used in one conditional UPDATE (two callbacks with one state: one wins)."""
    if not isinstance(state, str) or not 20 <= len(state) <= 200:
        raise _bad_state()
    digest = _hash(state)
    with transaction.atomic():
        spent = OAuthState.objects.filter(state_hash=digest, used_at__isnull=True,
                                          expires_at__gt=timezone.now()).update(used_at=timezone.now())
        if not spent:
            raise _bad_state()
        return OAuthState.objects.select_related("client").get(state_hash=digest)


def _bad_state() -> ApplicationError:
    return ApplicationError("This authorization link is unknown, used already or expired; ask for a new one.",
                            code="invalid_state", status=400)


def authorization_finish(*, state: str, code: str, error: str = "", error_description: str = "") -> Finished:
    """Spend `state`, exchange `code` and store the connection. A bad state is a 400 that changes nothing; a
    provider error or refused exchange (a PKCE mismatch among them) is a 400 with the provider's words, and the
    state stays spent."""
    row = _spend(state)
    client, provider = row.client, row.provider
    details = {"provider": provider}
    if error:
        # An RFC 6749 error code is [a-z_]; anything else in the query is not echoed.
        failure = oauth_client.OAuthFailure(re.sub(r"[^a-z_]", "", error.lower())[:64], error_description)
        raise ApplicationError(f"{provider} did not authorize the connection ({failure.error}).",
                               code="oauth_denied", status=400, details={**details, "reason": failure.description})
    app = app_for(provider)
    if app is None or not isinstance(code, str) or not code or len(code) > 2000:
        raise ApplicationError("The authorization answer has no usable code.", code="oauth_failed", status=400,
                               details=details)
    try:
        token = oauth_client.exchange_code(app, code=code, redirect_uri=row.redirect_uri,
                                           code_verifier=row.code_verifier)
    except oauth_client.OAuthFailure as failure:
        logger.info("%s refused a code exchange: %s", provider, failure.error)
        raise ApplicationError(f"{provider} refused the authorization code ({failure.error}).", code="oauth_failed",
                               status=400 if failure.error != "unreachable" else 503,
                               details={**details, "reason": failure.description}) from None
    actor = Actor.for_client(client)
    connection = connection_save(client=client, end_user=row.end_user, provider=provider, token=token, identity="",
                                 actor=actor, reason="oauth_callback")
    try:
        who = identity_for(client=client, end_user=row.end_user, provider=provider, actor=actor, reason="oauth_identity")
    except (ApplicationError, oauth_client.OAuthFailure):
        who = ""  # the account works without a name; the listing shows the masked token instead
    if who:
        type(connection).objects.filter(pk=connection.pk).update(identity=who)
    return Finished(connection_id=str(connection.pk), provider=provider, end_user=row.end_user,
                    return_url=row.return_url)


def return_location(finished: Finished) -> str:
    """Where the browser goes: the client's return_url with the outcome in its query."""
    separator = "&" if urlsplit(finished.return_url).query else "?"
    return finished.return_url + separator + urlencode(
        {"oauth": "connected", "provider": finished.provider, "connection_id": finished.connection_id})


def states_purge_expired() -> int:
    """Forget authorizations that expired or were used (the beat purge calls it)."""
    deleted, _ = OAuthState.objects.filter(Q(expires_at__lte=timezone.now()) | Q(used_at__isnull=False)).delete()
    return deleted
