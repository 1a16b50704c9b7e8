"""An agent using a remote MCP server protected by MCP authorization, through the API (eager Celery): creating it
fails with `authorization_required` and an authorization_url; after the user approves (our callback), validating
it again connects with the token from the vault and lists the server's tools; a token the server refuses is
refreshed once; another end user's agent does not get the token."""

from urllib.parse import parse_qs, urlsplit

from agents_app.models import Agent
from agents_app.services import agent_create, agent_revalidate, agent_validate
from mcpagent.vault.models import McpAuthConnection, OAuthState
from sessions_app.models import Session
from tests.agents_app.test_apis import create_body, error_of
from tests.fakes.oauth_server import callback_path, follow
from tests.fakes.protected_mcp import protected_mcp  # noqa: F401  (fixture)


PLAYBACK = [{"role": "user", "text": "Note: call Bob"},
            {"role": "assistant", "text": "Adding it.",
             "tool_calls": [{"name": "notes__add_note", "arguments": {"text": "call Bob"}}]},
            {"role": "assistant", "text": "Done."}]


def _create(api, server, **extra) -> dict:
    body = create_body({"notes": {"url": server.url, "transport": "http"}}, model="playback", playback=PLAYBACK,
                       **extra)
    return error_of(api.post("/api/agents/create", body, format="json"), 422, "agent_validation_failed")["details"]


def _authorize(anon_api, link: dict) -> dict:
    response = anon_api.get(callback_path(follow(link["authorization_url"])))
    assert response.status_code == 200, response.content
    return response.json()


def test_a_protected_server_is_authorized_by_link_then_its_tools_are_listed_with_the_token(api, anon_api,
                                                                                      protected_mcp):
    details = _create(api, protected_mcp, end_user="alice")
    assert details["reason"] == "authorization_required" and details["server"] == "notes"
    [link] = details["authorizations"]
    assert link["provider"] == "mcp" and link["server_url"] == protected_mcp.url and link["mcp_servers"] == ["notes"]
    assert link["reason"] == "not_connected"
    query = parse_qs(urlsplit(link["authorization_url"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["resource"] == [protected_mcp.url]
    # Dynamic registration happened once, at the authorization server the server's metadata names.
    assert query["client_id"][0] in protected_mcp.oauth.registered
    assert protected_mcp.verifier.seen == []  # no token was ever sent before the user approved

    finished = _authorize(anon_api, link)
    assert finished["provider"] == "mcp" and finished["server_url"] == protected_mcp.url
    connection = McpAuthConnection.objects.get(pk=finished["connection_id"])
    assert connection.status == "active" and connection.end_user == "alice"

    agent_id = details["agent_id"]
    response = api.post(f"/api/agents/{agent_id}/validate", {}, format="json")
    assert response.status_code == 200, response.content
    assert sorted(response.json()["agent"]["tools"]["notes"]) == ["add_note", "list_notes"]
    assert protected_mcp.verifier.seen[-1] == connection.token["access_token"]

    # A run connects with the token too (fast-agent, the playback model calling the server's tool).
    body = api.post(f"/api/agents/{agent_id}/messages", {"message": "Note: call Bob"}, format="json").json()
    assert body["reply"] == "Done." and body["tool_calls"][0]["result"].startswith("added: call Bob"), body
    assert connection.token["access_token"] not in str(body)


def test_a_refused_token_is_refreshed_once_and_a_bad_token_is_never_accepted(api, anon_api, protected_mcp):
    details = _create(api, protected_mcp)
    _authorize(anon_api, details["authorizations"][0])
    first = McpAuthConnection.objects.get().token["access_token"]
    protected_mcp.oauth.expire_access_tokens()  # the server now refuses the stored access token
    response = api.post(f"/api/agents/{details['agent_id']}/validate", {}, format="json")
    assert response.status_code == 200, response.content
    assert McpAuthConnection.objects.get().token["access_token"] != first
    assert first in protected_mcp.verifier.seen  # refused first, then the refreshed one worked

    protected_mcp.oauth.expire_access_tokens()
    protected_mcp.oauth.refuse_refresh = True  # the grant is gone: the user must sign in again
    again = error_of(api.post(f"/api/agents/{details['agent_id']}/validate", {}, format="json"), 422)["details"]
    assert again["reason"] == "authorization_required" and again["authorizations"][0]["authorization_url"]
    assert again["authorizations"][0]["reason"] == "needs_reauth"
    assert McpAuthConnection.objects.get().status == "needs_reauth"


def test_another_end_user_does_not_get_the_token(api, anon_api, protected_mcp):
    _authorize(anon_api, _create(api, protected_mcp, end_user="alice")["authorizations"][0])
    seen = len(protected_mcp.verifier.seen)
    details = _create(api, protected_mcp, end_user="bob")
    assert details["reason"] == "authorization_required"
    assert len(protected_mcp.verifier.seen) == seen  # bob's agent sent no token at all
    assert Agent.objects.get(pk=details["agent_id"]).status == "failed"


def test_the_chat_session_of_a_failed_agent_offers_the_link(api, anon_api, protected_mcp):
    session = Session.objects.create(client=api.client_obj, end_user="alice", status=Session.Status.ERROR)
    agent = agent_create(client=api.client_obj, session=session, servers={"notes": {"url": protected_mcp.url}},
                         user_prompt="List my notes", workflow="List the notes")
    agent = agent_validate(agent_id=agent.id)
    assert agent.status == "failed" and agent.error["code"] == "authorization_required"
    session.context["agent_id"] = str(agent.id)
    session.save()
    [link] = api.get(f"/api/sessions/{session.id}").json()["authorizations"]
    assert link["provider"] == "mcp" and link["server_url"] == protected_mcp.url
    assert OAuthState.objects.get(provider="mcp").session_id == session.id  # bound to the session
    _authorize(anon_api, link)
    assert agent_revalidate(agent_id=agent.id).status == "ready"
    assert api.get(f"/api/sessions/{session.id}").json()["authorizations"] == []  # nothing left to authorize


def test_the_session_get_makes_links_from_what_the_vault_stored_without_network(api, anon_api, protected_mcp):
    session = Session.objects.create(client=api.client_obj, end_user="alice", status=Session.Status.ERROR)
    agent = agent_create(client=api.client_obj, session=session, servers={"notes": {"url": protected_mcp.url}},
                         user_prompt="List my notes", workflow="List the notes")
    assert agent_validate(agent_id=agent.id).error["code"] == "authorization_required"
    session.context["agent_id"] = str(agent.id)
    session.save()
    # From here on, count what reaches the protected server and its authorization server.
    mcp_hits: list[str] = []
    inner = protected_mcp._inner

    async def counting(scope, receive, send):
        mcp_hits.append(scope.get("path", ""))
        await inner(scope, receive, send)

    protected_mcp._inner = counting
    oauth_before = len(protected_mcp.oauth.requests)
    first = api.get(f"/api/sessions/{session.id}").json()["authorizations"]
    second = api.get(f"/api/sessions/{session.id}").json()["authorizations"]
    assert mcp_hits == [] and len(protected_mcp.oauth.requests) == oauth_before
    assert [link["server_url"] for link in first + second] == [protected_mcp.url] * 2
    # Each answer's link is its own one-time state, as for a provider's link; the first still works.
    assert first[0]["authorization_url"] != second[0]["authorization_url"]
    assert OAuthState.objects.filter(provider="mcp", session_id=session.id).count() == 2
    protected_mcp._inner = inner
    _authorize(anon_api, first[0])
    assert agent_revalidate(agent_id=agent.id).status == "ready"
