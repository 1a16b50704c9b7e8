"""A tiny MCP server (stdio) that, like real API wrappers, refuses to start when its token is wrong."""

import os
import sys

from mcp.server.mcpserver import MCPServer

EXPECTED = "good-token-123"

if os.environ.get("TOKEN") != EXPECTED:
    print("Error: invalid token (401 Unauthorized) - check your credentials", file=sys.stderr)
    sys.exit(1)

server = MCPServer("auth-test")


@server.tool()
def whoami() -> str:
    """Who the token belongs to."""
    return "test-user"


server.run()
