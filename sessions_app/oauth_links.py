"""The authorization links a chat reply offers: one per provider the plan needs and the end user has not connected
(or must authorize again), made fresh for each reply (each link works once, for OAUTH_STATE_TTL_SECONDS)."""

from django.conf import settings
from django.urls import reverse

from mcpagent.errors import ApplicationError
from mcpagent.vault.oauth_flow import authorization_start
from sessions_app.models import Session


def redirect_uri(request) -> str:
    """The callback URL registered with the providers: OAUTH_REDIRECT_URL, else this service's own as reached."""
    return settings.OAUTH_REDIRECT_URL or request.build_absolute_uri(reverse("oauth-callback"))


def authorization_links(request, session: Session) -> list[dict]:
    """[{provider, mcp_servers, credential_keys, reason, authorization_url}] for the session's open authorizations
    (none while the session is busy or done)."""
    if session.status != Session.Status.PENDING_CREDENTIALS:
        return []
    links = []
    for needed in session.context.get("authorizations") or []:
        start = {"client": session.client, "end_user": session.end_user, "session_id": session.id,
                 "provider": needed["provider"], "redirect_uri": redirect_uri(request)}
        try:
            url = authorization_start(**start, return_url=session.context.get("oauth_return_url", ""))
        except ApplicationError as exc:
            if exc.code != "return_url_not_allowed":  # the client has since removed that host: no redirect then
                raise
            url = authorization_start(**start)
        links.append({**needed, "authorization_url": url})
    return links
