"""An MCP server that takes a few seconds to start (argv[1], default 4): long enough to kill a worker mid-validation."""

import sys
import time

from mcp.server.mcpserver import MCPServer

time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 4.0)
server = MCPServer("slow-start")


@server.tool()
def ping() -> str:
    """Answers pong."""
    return "pong"


server.run()
