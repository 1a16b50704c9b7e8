"""A remote MCP server (streamable HTTP) on 127.0.0.1 that requires `Authorization: Bearer <token>`, run by
uvicorn in a thread of the test process."""

import socket
import threading
import time

import uvicorn
from mcp.server.mcpserver import MCPServer

TOKEN = "remote-secret-456"


def _app():
    server = MCPServer("remote-test")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    inner = server.streamable_http_app(stateless_http=True, json_response=True)

    async def app(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "invalid_token"}'})
                return
        await inner(scope, receive, send)

    return app


class RemoteServer:
    """Serves `app` (by default the token-checking server above) on a free port of 127.0.0.1 while in a with block."""

    def __init__(self, app=None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app or _app(), host="127.0.0.1", port=self.port,
                                                     log_level="error", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> "RemoteServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
