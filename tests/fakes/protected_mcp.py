"""A remote MCP server (streamable HTTP, the `mcp` SDK's MCPServer) on 127.0.0.1 protected by MCP authorization:
it answers 401 with `WWW-Authenticate: Bearer resource_metadata=...`, serves its protected resource metadata
(RFC 9728) naming a FakeOAuthServer as its authorization server, and takes only that server's live access tokens
issued for this resource (RFC 8707) with the `mcp` scope: the SDK's bearer middleware asks the token verifier
below, which looks the token up in the authorization server (as an introspection call would).

    with FakeOAuthServer(redirect_uris=[...]) as oauth, ProtectedMcpServer(oauth) as server:
        server.url  # http://127.0.0.1:<port>/mcp
"""

import pytest
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from tests.agents_app.servers.remote import RemoteServer
from tests.fakes.oauth_server import FakeOAuthServer


class _Verifier:
    def __init__(self, oauth: FakeOAuthServer, *, resource_path: str = "/mcp"):
        self.oauth = oauth
        self.seen: list[str] = []

    async def verify_token(self, token: str) -> AccessToken | None:
        self.seen.append(token)
        info = self.oauth.token_info(token)
        if info is None:
            return None
        return AccessToken(token=token, client_id=info["client_id"], scopes=info["scope"].split(),
                           expires_at=info["expires_at"], resource=info["resource"] or None)


class ProtectedMcpServer:
    def __init__(self, oauth: FakeOAuthServer, *, resource_path: str = "/mcp"):
        self._inner = None

        async def app(scope, receive, send):  # a plain function: uvicorn reads a method as an ASGI2 app
            await self._inner(scope, receive, send)

        self._remote = RemoteServer(app)
        self.url = self._remote.url
        self.verifier = _Verifier(oauth)
        server = MCPServer("protected-notes", token_verifier=self.verifier, auth=AuthSettings(
            issuer_url=oauth.url, resource_server_url=self.url.removesuffix("/mcp") + resource_path, required_scopes=["mcp"],
            validate_token_resource=True))

        @server.tool()
        def list_notes() -> list[str]:
            """The signed-in user's notes."""
            return ["buy milk"]

        @server.tool()
        def add_note(text: str) -> str:
            """Add a note."""
            return f"added: {text}"

        self._inner = server.streamable_http_app(stateless_http=True, json_response=True)

    def __enter__(self) -> "ProtectedMcpServer":
        self._remote.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._remote.__exit__(*exc)


CALLBACK = "http://testserver/api/oauth/callback"


@pytest.fixture
def protected_mcp(settings, db):
    """A FakeOAuthServer (`.oauth`) and a ProtectedMcpServer using it; our callback URL is the test server's."""
    settings.OAUTH_REDIRECT_URL = CALLBACK
    settings.AGENT_ALLOW_HTTP_LOOPBACK = True
    with FakeOAuthServer(redirect_uris=[CALLBACK]) as oauth, ProtectedMcpServer(oauth) as server:
        server.oauth = oauth
        yield server
