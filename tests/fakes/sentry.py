"""A fake Sentry ingest endpoint on 127.0.0.1 that accepts what sentry-sdk really sends.

sentry-sdk POSTs an envelope to `/api/<project id>/envelope/` with an `X-Sentry-Auth` header, usually
gzip-compressed (`Content-Encoding: gzip`; `br` when brotli is installed). An envelope is newline-separated:
an envelope header (JSON), then per item an item header (JSON, with `type` and optionally `length`) and its
payload (`length` bytes, else up to the next newline). Every request's decompressed body is kept in `.raw`
(so a test can search every byte sent) and every `event` item's payload in `.events`.

    with FakeSentry() as sentry:
        init_sentry(dsn=sentry.dsn)
        ...
        sentry_sdk.flush()
        assert sentry.events
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PUBLIC_KEY = "0123456789abcdef0123456789abcdef"
PROJECT_ID = "42"


def parse_envelope(body: bytes) -> list[tuple[dict, bytes]]:
    """The (item header, payload) pairs of an envelope (its own header is skipped)."""
    _, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"]:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


def decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only when sentry-sdk chose it, i.e. brotli is installed

        return brotli.decompress(body)
    return body


class FakeSentry:
    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.events: list[dict] = []
        self.auth_headers: list[str] = []
        self._got_event = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.rstrip("/") != f"/api/{PROJECT_ID}/envelope":
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = decompress(body, self.headers.get("Content-Encoding", ""))
                with fake._got_event:
                    fake.raw.append(body)
                    fake.auth_headers.append(self.headers.get("X-Sentry-Auth", ""))
                    for header, payload in parse_envelope(body):
                        if header.get("type") == "event":
                            fake.events.append(json.loads(payload))
                    fake._got_event.notify_all()
                answer = json.dumps({"id": "0" * 32}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self._server.server_port}/{PROJECT_ID}"

    def wait_for_events(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        with self._got_event:
            self._got_event.wait_for(lambda: len(self.events) >= count, timeout=timeout)
        return list(self.events)

    def __enter__(self) -> FakeSentry:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
