"""A working MCP server whose tool repeats what it is given (a secret included, if a model sends one), and one
that reports an error: for recording tool calls with their arguments redacted."""

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


server.run()
