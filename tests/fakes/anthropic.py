"""A fake Anthropic Messages API on 127.0.0.1 that speaks the real wire protocol.

`POST /v1/messages` answers from a script, one step per request, streaming the real SSE events when the
request asks for `stream: true` (message_start, content_block_start, content_block_delta with text_delta /
input_json_delta, content_block_stop, message_delta with stop_reason and usage, message_stop) and a plain
JSON message otherwise. Every request is recorded (`.requests`: parsed body and headers) so tests can assert
what the client sent, e.g. that a tool_result came back.

    script = [
        [tool_use("get_current_time", {"timezone": "UTC"})],   # first call: the model asks for a tool
        echo_tool_result("The time service says: "),           # second call: text echoing the result
    ]
    with FakeAnthropic(script) as fake:
        settings.ANTHROPIC_BASE_URL = fake.url

A step is a list of blocks (`text(...)`, `tool_use(...)`) or a callable(request_body) returning one, or
`api_error(status, message)` for an HTTP error response.
After the script runs out, the last step repeats.
"""

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Block = dict[str, Any]
Step = list[Block] | Callable[[dict], list[Block]]


def text(value: str) -> Block:
    return {"type": "text", "text": value}


def tool_use(name: str, arguments: dict, *, id: str | None = None) -> Block:
    return {"type": "tool_use", "id": id or f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": arguments}


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def api_error(status: int, message: str = "error") -> list[Block]:
    """A step answering with an HTTP error in the API's error shape (401, 429, 500, 529...)."""
    return [{"type": "api_error", "status": status, "message": message}]


def tool_results(body: dict) -> list[dict]:
    """Every tool_result block in a request body's messages, in order."""
    found = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            found.extend(block for block in content if isinstance(block, dict) and block.get("type") == "tool_result")
    return found


def tool_result_text(result: dict) -> str:
    content = result.get("content")
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content or [] if isinstance(block, dict))


def echo_tool_result(prefix: str = "The tool returned: ") -> Callable[[dict], list[Block]]:
    """A step answering with the text of the last tool_result the client sent."""

    def step(body: dict) -> list[Block]:
        results = tool_results(body)
        return [text(prefix + (tool_result_text(results[-1]) if results else "<no tool result>"))]

    return step


class FakeAnthropic:
    def __init__(self, script: list[Step], *, model: str = "claude-sonnet-4-5"):
        self.script = list(script)
        self.model = model
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.split("?")[0].endswith("/v1/messages"):
                    self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    error = {"type": "invalid_request_error", "message": "bad json"}
                    self._json(400, {"type": "error", "error": error})
                    return
                blocks = fake._next_step(body, dict(self.headers))
                if blocks and blocks[0]["type"] == "api_error":
                    error_type = _ERROR_TYPES.get(blocks[0]["status"], "api_error")
                    self._json(blocks[0]["status"], {"type": "error",
                                                     "error": {"type": error_type, "message": blocks[0]["message"]}})
                    return
                if body.get("stream"):
                    self._stream(body, blocks)
                else:
                    self._json(200, fake._message(body, blocks))

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict, blocks: list[Block]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for event, data in fake._events(body, blocks):
                    self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeAnthropic":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]

    def _next_step(self, body: dict, headers: dict) -> list[Block]:
        with self._lock:
            index = len(self.requests)
            self.requests.append({"body": body, "headers": headers})
            step = self.script[min(index, len(self.script) - 1)]
        return step(body) if callable(step) else step

    def _message(self, body: dict, blocks: list[Block]) -> dict:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": body.get("model", self.model), "content": blocks,
            "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 25, "output_tokens": 10},
        }

    def _events(self, body: dict, blocks: list[Block]) -> list[tuple[str, dict]]:
        message = self._message(body, blocks)
        start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 25, "output_tokens": 1}}
        events: list[tuple[str, dict]] = [("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": {"type": "text", "text": ""}}))
                value = block["text"]
                for chunk in [value[i:i + 40] for i in range(0, len(value), 40)] or [""]:
                    events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                           "delta": {"type": "text_delta", "text": chunk}}))
            else:
                events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": {"type": "tool_use", "id": block["id"],
                                                                         "name": block["name"], "input": {}}}))
                arguments = json.dumps(block["input"])
                for chunk in [arguments[i:i + 10] for i in range(0, len(arguments), 10)]:
                    delta = {"type": "input_json_delta", "partial_json": chunk}
                    events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                           "delta": delta}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                         "usage": {"output_tokens": 10}}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
