"""A catalogue server whose token comes from the end user's OAuth connection, validated against a real
authorization server on 127.0.0.1 (tests/fakes/oauth_server.py): when the provider revoked the access token early
the server refuses it (credentials_rejected), the connection is refreshed once and the server starts with the new
token; when the refresh is refused too, the agent fails with oauth_reauth_needed and the connection needs
reauthorization."""

import pytest

from agents_app.models import Agent
from agents_app.services import agent_validate
from mcpagent.vault.models import OAuthApp, OAuthConnection
from mcpagent.vault.oauth_flow import authorization_start
from sessions_app.models import Session
from tests.fakes.oauth_server import FakeOAuthServer, callback_path, follow

CALLBACK = "http://testserver/api/oauth/callback"
SLACK = "slack-conversations"  # its rule: SLACK_MCP_XOXB_TOKEN is the connection's access token


@pytest.fixture
def oauth_server(settings, api, anon_api, test_servers):
    settings.OAUTH_REDIRECT_URL = CALLBACK
    settings.SANDBOX, settings.ALLOW_UNSANDBOXED_SERVERS = "none", True  # the server reaches 127.0.0.1 itself
    with FakeOAuthServer(redirect_uris=[CALLBACK]) as server:
        server.register(OAuthApp, provider="slack")
        yield server


def _agent(api, anon_api, server, test_servers) -> Agent:
    session = Session.objects.create(client=api.client_obj, end_user="alice")
    url = authorization_start(client=api.client_obj, end_user="alice", session_id=session.pk, provider="slack",
                              redirect_uri=CALLBACK)
    assert anon_api.get(callback_path(follow(url))).status_code == 200
    entry = {"command": "python", "args": [str(test_servers / "oauth_token_server.py")], "catalogue": SLACK,
             "env": {"ACCESS_TOKEN": {"$credential": "SLACK_MCP_XOXB_TOKEN"},
                     "USERINFO_URL": f"{server.url}/userinfo"}}
    return Agent.objects.create(client=api.client_obj, session=session, end_user="alice",
                                mcp_config={"mcpServers": {"slack": entry}})


def test_a_token_the_provider_revoked_early_is_refreshed_once_and_the_server_starts(api, anon_api, oauth_server,
                                                                                   test_servers):
    agent = _agent(api, anon_api, oauth_server, test_servers)
    first = OAuthConnection.objects.get().token
    oauth_server.expire_access_tokens()  # revoked server-side; the refresh token stays valid
    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.READY, agent.error
    assert [tool["name"] for tool in agent.tools["slack"]] == ["whoami"]
    now = OAuthConnection.objects.get().token
    assert now["access_token"] != first["access_token"] and oauth_server.access_token_works(now["access_token"])
    assert any(answer.get("access_token") == now["access_token"] for answer in oauth_server.issued)


def test_a_refused_refresh_fails_the_agent_with_oauth_reauth_needed(api, anon_api, oauth_server, test_servers):
    agent = _agent(api, anon_api, oauth_server, test_servers)
    oauth_server.expire_access_tokens()
    oauth_server.refuse_refresh = True  # the grant is gone: the user must authorize again
    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.FAILED
    assert agent.error["code"] == "oauth_reauth_needed" and agent.error["server"] == "slack"
    assert OAuthConnection.objects.get().status == "needs_reauth"
    assert OAuthConnection.objects.get().token["access_token"] not in str(agent.error)
