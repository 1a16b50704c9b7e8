"""The authorization links a chat reply offers: one per provider the plan needs and the end user has not connected
(or must authorize again), and one per remote MCP server that refused the session's agent until the end user signs
in to it (MCP authorization); made fresh for each reply (each link works once, for OAUTH_STATE_TTL_SECONDS).

A remote server's discovery and registration go over the network when its refusal is known (the agent creation
task, or a POST's reply with `prepare`); a GET's reply only reads what the vault stored, like a provider link."""

from agents_app.models import Agent
from agents_app.remote_auth import authorization_links as agent_authorization_links
from agents_app.remote_auth import authorization_prepare
from mcpagent.errors import ApplicationError
from mcpagent.vault.oauth_apis import callback_url
from mcpagent.vault.oauth_flow import authorization_start
from sessions_app.models import Session


def redirect_uri(request) -> str:
    """The callback URL registered with the providers: OAUTH_REDIRECT_URL, else this service's own as reached."""
    return callback_url(request)


def authorization_links(request, session: Session, *, prepare: bool = False) -> list[dict]:
    """[{provider, mcp_servers, credential_keys, reason, authorization_url}] for the session's open authorizations
    (none while the session is busy or done). `prepare` (POST only): discover remote servers first."""
    if session.status == Session.Status.ERROR:
        return _remote_server_links(request, session, prepare=prepare)
    if session.status != Session.Status.PENDING_CREDENTIALS:
        return []
    links = []
    for needed in session.context.get("authorizations") or []:
        start = {"client": session.client, "end_user": session.end_user, "session_id": session.id,
                 "provider": needed["provider"], "redirect_uri": redirect_uri(request),
                 "scopes": list(needed.get("scopes") or [])}
        try:
            url = authorization_start(**start, return_url=session.context.get("oauth_return_url", ""))
        except ApplicationError as exc:
            if exc.code != "return_url_not_allowed":  # the client has since removed that host: no redirect then
                raise
            url = authorization_start(**start)
        links.append({**needed, "authorization_url": url})
    return links


def _remote_server_links(request, session: Session, *, prepare: bool) -> list[dict]:
    """Links for the remote servers that asked the session's failed agent for authorization; after approving,
    the user's next message validates that agent again."""
    agent_id = session.context.get("agent_id")
    agent = session.agents.filter(pk=agent_id, status=Agent.Status.FAILED).first() if agent_id else None
    if agent is None:
        return []
    if prepare:
        authorization_prepare(agent, redirect_uri=redirect_uri(request))
    try:
        return agent_authorization_links(agent, session_id=session.id,
                                         return_url=session.context.get("oauth_return_url", ""))
    except ApplicationError as exc:
        if exc.code != "return_url_not_allowed":
            raise
        return agent_authorization_links(agent, session_id=session.id)
