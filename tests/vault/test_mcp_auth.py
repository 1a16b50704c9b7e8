"""MCP authorization for remote MCP servers, against a real protected MCP server (tests/fakes/protected_mcp.py)
and the authorization server it names (tests/fakes/oauth_server.py), both on 127.0.0.1."""

from urllib.parse import parse_qs, urlsplit

import pytest

from mcpagent.vault.mcp_auth_flow import mcp_authorization_start, mcp_token_for_use
from mcpagent.vault.models import McpAuthConnection, OAuthState
from tests.fakes.oauth_server import FakeOAuthServer, callback_path, follow
from tests.fakes.protected_mcp import ProtectedMcpServer

CALLBACK = "http://testserver/api/oauth/callback"


@pytest.fixture
def protected(settings, db):
    settings.OAUTH_REDIRECT_URL = CALLBACK
    settings.AGENT_ALLOW_HTTP_LOOPBACK = True
    with FakeOAuthServer(redirect_uris=[CALLBACK]) as oauth, ProtectedMcpServer(oauth) as server:
        server.oauth = oauth
        yield server


def test_smoke(api, anon_api, protected):
    url = mcp_authorization_start(client=api.client_obj, end_user="alice", session_id=None, server_url=protected.url,
                                  redirect_uri=CALLBACK)
    print(url)
    response = anon_api.get(callback_path(follow(url)))
    print(response.status_code, response.content)
    token = mcp_token_for_use(client=api.client_obj, end_user="alice", server_url=protected.url, actor=api.client_obj,
                              reason="test")
    print(token.server_url)
    print(protected.oauth.tokens[-1].resource, protected.oauth.registered)
