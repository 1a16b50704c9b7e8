"""The authorization code flow with PKCE (S256): a link for one end user to connect a provider, and its callback.

`authorization_start` makes a fresh `state` (kept only as its SHA-256) bound to the client, the session and the
end user, with a PKCE verifier (kept encrypted), and returns the provider's authorization URL. `authorization_finish`
spends the state exactly once (an unknown, used or expired one changes nothing), exchanges the code with the
verifier, and stores the tokens as the end user's OAuth connection. A `return_url` must be on a host the API
client registered (ApiClient.oauth_return_hosts); it is where the user's browser goes afterwards.
"""

import logging
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.db.models import Q
from django.utils import timezone

from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient
from mcpagent.vault import oauth_client
from mcpagent.vault.audit import Actor
from mcpagent.vault.mcp_auth_flow import mcp_authorization_finish
from mcpagent.vault.models import MCP_PROVIDER, OAuthState
from mcpagent.vault.oauth_states import Finished, return_url_check, state_create, state_spend
from mcpagent.vault.oauth_tokens import app_for, connection_save, identity_for

__all__ = ["Finished", "authorization_finish", "authorization_start", "return_location", "return_url_check",
           "states_purge_expired"]

logger = logging.getLogger("mcpagent.vault")


def authorization_start(*, client: ApiClient, end_user: str, session_id: Any, provider: str, redirect_uri: str,
                        return_url: str = "", scopes: list[str] | None = None) -> str:
    """A new authorization URL for `provider` (an active OAuthApp must exist), asking for the app's base scopes
    and `scopes` (what the planned servers need). The link works once, for OAUTH_STATE_TTL_SECONDS."""
    app = app_for(provider)
    if app is None:
        raise ApplicationError(f"No OAuth app is registered for {provider}.", code="oauth_not_configured",
                               status=409, details={"provider": provider})
    return_url = return_url_check(client=client, return_url=return_url)
    verifier = oauth_client.new_code_verifier()
    state = state_create(client=client, end_user=end_user, session_id=session_id, provider=provider,
                         code_verifier=verifier, redirect_uri=redirect_uri, return_url=return_url)
    return oauth_client.authorization_url(app, redirect_uri=redirect_uri, state=state, code_verifier=verifier,
                                          extra_scopes=scopes or [])


def authorization_finish(*, state: str, code: str, error: str = "", error_description: str = "") -> Finished:
    """Spend `state`, exchange `code` and store the connection. A bad state is a 400 that changes nothing; a
    provider error or refused exchange (a PKCE mismatch among them) is a 400 with the provider's words, and the
    state stays spent. A remote MCP server's authorization is finished by mcp_auth_flow."""
    row = state_spend(state)
    if row.provider == MCP_PROVIDER:
        return mcp_authorization_finish(row, code=code, error=error, error_description=error_description)
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
    outcome = {"oauth": "connected", "provider": finished.provider, "connection_id": finished.connection_id}
    if finished.server_url:
        outcome["server_url"] = finished.server_url
    return finished.return_url + separator + urlencode(outcome)


def states_purge_expired() -> int:
    """Forget authorizations that expired or were used (the beat purge calls it)."""
    deleted, _ = OAuthState.objects.filter(Q(expires_at__lte=timezone.now()) | Q(used_at__isnull=False)).delete()
    return deleted
