"""A fake OpenAI embeddings API on 127.0.0.1: POST /v1/embeddings with the real request and response JSON.

Vectors are deterministic bags of hashed words (texts sharing words are close), so search through this provider
behaves sensibly. `fail_next(...)` queues error answers (429 with Retry-After, 500, ...) to test retries.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

MODEL_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def fake_vector(text: str, dims: int) -> list[float]:
    vector = np.zeros(dims, dtype=np.float64)
    for word in re.findall(r"\w+", text.lower()) or [""]:
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % dims] += 1.0 if digest[4] % 2 else -1.0
    norm = np.linalg.norm(vector) or 1.0
    return (vector / norm).round(6).tolist()


class FakeOpenAI:
    def __init__(self, *, api_key: str = "sk-test"):
        self.api_key = api_key
        self.requests: list[dict] = []  # bodies received, in order
        self._failures: list[tuple[int, dict]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail_next(self, *failures: tuple[int, dict]) -> None:
        """Answer the next requests with these (status, headers) errors, in order."""
        with self._lock:
            self._failures.extend(failures)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def _error(self, status: int, message: str, code: str, headers: dict | None = None) -> None:
                error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
                self._send(status, {"error": error}, headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/v1/embeddings":
                    return self._error(404, f"Unknown request URL: POST {self.path}.", "unknown_url")
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._error(401, "Incorrect API key provided.", "invalid_api_key")
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._error(400, "We could not parse the JSON body of your request.", "invalid_json")
                with fake._lock:
                    fake.requests.append(body)
                    failure = fake._failures.pop(0) if fake._failures else None
                if failure:
                    status, headers = failure
                    code = "rate_limit_exceeded" if status == 429 else "server_error"
                    return self._error(status, "Simulated failure.", code, headers)
                model = body.get("model")
                if model not in MODEL_DIMS:
                    return self._error(404, f"The model `{model}` does not exist.", "model_not_found")
                inputs = body.get("input")
                inputs = [inputs] if isinstance(inputs, str) else inputs
                if not isinstance(inputs, list) or not inputs or any(not isinstance(t, str) or not t for t in inputs):
                    return self._error(400, "'input' must be a non-empty string or array of strings.", "invalid_input")
                dims = int(body.get("dimensions") or MODEL_DIMS[model])
                data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, dims)} for i, t in enumerate(inputs)]
                data.reverse()  # the API does not promise order; clients must sort by index
                tokens = sum(len(t.split()) for t in inputs)
                self._send(200, {"object": "list", "data": data, "model": model,
                                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

        return Handler
