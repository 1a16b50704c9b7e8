"""A working MCP server whose tool repeats what it is given (a secret included, if a model sends one), and one
that reports an error: for recording tool calls with their arguments redacted."""

import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")


@server.tool()
def echo(text: str) -> str:
    """Answers with the text it was given."""
    return f"echo: {text}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the reason."""
    raise ValueError(f"failed: {reason}")


@server.tool()
def pause(seconds: float) -> str:
    """Waits a little (at most 5 s), so a run can be watched while it is under way."""
    time.sleep(min(float(seconds), 5.0))
    return f"waited {seconds} s"


server.run()
