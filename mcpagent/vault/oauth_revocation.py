"""Revoking an OAuth connection's tokens at its provider, in the provider's own style (the preset's
`revocation_style`): RFC 7009 through authlib, Slack's `auth.revoke` Web API method, GitHub's grant deletion, or
nothing where the provider offers no call (Notion, Microsoft: the user removes the app's access themselves).

The outcome says what happened so the client can tell the user: `revoked` True (the provider confirmed), False (it
was asked and refused or could not be reached) or None (nothing could be asked), with a `message` in words.
"""

import logging
from dataclasses import dataclass

import requests

from mcpagent.vault import oauth_client
from mcpagent.vault.models import OAuthApp

logger = logging.getLogger("mcpagent.vault")


@dataclass(frozen=True)
class Revocation:
    revoked: bool | None
    message: str


def _slack_auth_revoke(endpoint: str, token: dict) -> None:
    """Slack answers HTTP 200 either way; {"ok": true, "revoked": true} is the success."""
    response = oauth_client.provider_call("revocation", lambda timeout: requests.post(
        endpoint, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=timeout,
        allow_redirects=False))
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or not (body.get("ok") and body.get("revoked")):
        error = body.get("error") if isinstance(body, dict) else ""
        raise oauth_client.OAuthFailure("revocation_failed", f"Slack answered HTTP {response.status_code} "
                                        f"({str(error or 'not revoked')[:60]})")


def _github_grant_delete(endpoint: str, app: OAuthApp, token: dict) -> None:
    """Deleting the grant revokes every token of this app for that user (GitHub answers 204)."""
    response = oauth_client.provider_call("revocation", lambda timeout: requests.delete(
        endpoint.replace("{client_id}", app.client_id), auth=(app.client_id, app.client_secret or ""),
        json={"access_token": token["access_token"]}, timeout=timeout, allow_redirects=False,
        headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}))
    if response.status_code != 204:
        raise oauth_client.OAuthFailure("revocation_failed", f"GitHub answered HTTP {response.status_code}")


def _rfc7009(app: OAuthApp, token: dict) -> bool:
    revoked = False
    for hint in ("refresh_token", "access_token"):
        if token.get(hint):
            revoked = oauth_client.revoke(app, token=token[hint], hint=hint) or revoked
    return revoked


def connection_revoke(app: OAuthApp | None, provider: str, token: dict) -> Revocation:
    """Ask `provider` to revoke `token` (the connection's stored answer). Never raises: a failure is reported."""
    if app is None or not token.get("access_token"):
        return Revocation(None, f"The {provider} connection was forgotten here; no OAuth app is registered for "
                                "it, so it could not be revoked at the provider.")
    ends = oauth_client.endpoints(app)
    if ends.revocation_style == "none" or not ends.revocation:
        note = ends.revocation_note or (f"{provider} offers no revocation endpoint: the connection was forgotten "
                                        f"here; remove the app's access in your {provider} account settings.")
        return Revocation(None, note)
    try:
        if ends.revocation_style == "slack_auth_revoke":
            _slack_auth_revoke(ends.revocation, token)
        elif ends.revocation_style == "github_grant":
            _github_grant_delete(ends.revocation, app, token)
        elif not _rfc7009(app, token):
            return Revocation(None, f"The {provider} connection was forgotten here; it could not be revoked.")
    except oauth_client.OAuthFailure as failure:
        logger.warning("revocation of a %s connection failed: %s", provider, failure.error)
        return Revocation(False, f"{provider} did not confirm the revocation ({failure.description or failure.error}"
                                 f"); the connection was forgotten here. Remove the app's access in your "
                                 f"{provider} account settings to be sure.")
    return Revocation(True, f"{provider} revoked the connection's access; it was forgotten here.")

