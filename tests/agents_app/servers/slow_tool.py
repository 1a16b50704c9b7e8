"""An MCP server whose tool never returns: runs must time the call out and go on."""

import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("slow")


@server.tool()
def wait_forever() -> str:
    """Blocks far longer than any tool timeout."""
    time.sleep(600)
    return "finally"


server.run()
