"""A tiny MCP server (stdio) that, like real API wrappers, checks its OAuth access token with the provider before
serving (GET the userinfo endpoint with it as a Bearer token) and refuses to start when the provider says 401."""

import os
import sys
import urllib.error
import urllib.request

from mcp.server.mcpserver import MCPServer

request = urllib.request.Request(os.environ["USERINFO_URL"],
                                 headers={"Authorization": f"Bearer {os.environ.get('ACCESS_TOKEN', '')}"})
try:
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5).read()
except urllib.error.HTTPError as error:
    print(f"Error: invalid_auth ({error.code} Unauthorized) - the token was rejected", file=sys.stderr)
    sys.exit(1)

server = MCPServer("oauth-token-test")


@server.tool()
def whoami() -> str:
    """Who the token belongs to."""
    return "ann@example.com"


server.run()
