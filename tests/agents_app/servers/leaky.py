"""A working MCP server that starts a detached grandchild in a new session (like a daemonising launcher):
process-group kills miss it; the process tag must not."""

import subprocess
import sys

from mcp.server.mcpserver import MCPServer

subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

server = MCPServer("leaky")


@server.tool()
def ping() -> str:
    """Answers pong."""
    return "pong"


server.run()
