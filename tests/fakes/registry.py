"""A fake official MCP registry on 127.0.0.1 that speaks the real `GET /v0/servers` wire format.

    {"servers": [{"server": {...server.json...},
                  "_meta": {"io.modelcontextprotocol.registry/official": {"status", "publishedAt", "updatedAt",
                                                                          "isLatest"}}}],
     "metadata": {"nextCursor": "<opaque>", "count": N}}

It serves entries in the registry dump's shape (server.json with the official `_meta` inline, as in
production_servers.json), ordered by name and version, with `limit` (default 30, max 100), an opaque
`cursor`, `updated_since` (strictly after, RFC 3339) and `version=latest`. Every request is recorded in
`.requests` (path and query) so tests can assert what the client asked for.

Fault injection, per page number (1-based position of the page for the request's limit):
    fake.fail(page=2, times=2, status=503)   # answer 503 twice, then normally
    fake.drop(page=3, times=99)              # send headers and half the body, then close the connection
    fake.slow(page=1, times=1, seconds=2)    # answer after a delay (client timeouts)

    with FakeRegistry(entries) as fake:
        call_command("sync_registry", url=fake.url)
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

OFFICIAL = "io.modelcontextprotocol.registry/official"


def load_snapshot(path: Path) -> list[dict]:
    """The entries of a registry dump (production_servers.json)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["servers"]


def _timestamp(value: str) -> datetime:
    """RFC 3339 as the registry writes it (nanoseconds, 'Z'); Python keeps microseconds."""
    value = value.replace("Z", "+00:00")
    fraction = re.search(r"\.(\d+)", value)
    if fraction:
        value = value[: fraction.start(1)] + fraction.group(1)[:6].ljust(6, "0") + value[fraction.end(1):]
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed


def _cursor_offset(cursor: str) -> int:
    """Our opaque cursor: base64 of {"offset": n}. ValueError when it is not one of ours."""
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(cursor) from None


class FakeRegistry:
    def __init__(self, entries: list[dict]):
        self.entries = copy.deepcopy(entries)
        self.requests: list[dict] = []
        self._faults: dict[int, list[tuple[str, float]]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- fault injection ----------------------------------------------------------------------------------
    def fail(self, *, page: int, times: int = 1, status: int = 503) -> None:
        self._faults.setdefault(page, []).extend([("status", status)] * times)

    def drop(self, *, page: int, times: int = 1) -> None:
        self._faults.setdefault(page, []).extend([("drop", 0)] * times)

    def slow(self, *, page: int, times: int = 1, seconds: float = 2.0) -> None:
        self._faults.setdefault(page, []).extend([("slow", seconds)] * times)

    def clear_faults(self) -> None:
        self._faults.clear()

    def update(self, name: str, *, updated_at: str, **fields) -> None:
        """Change the latest version of `name` (e.g. its description) and stamp it updated at `updated_at`."""
        for entry in self.entries:
            meta = entry.get("_meta", {}).get(OFFICIAL, {})
            if entry["name"] == name and meta.get("isLatest"):
                entry.update(fields)
                meta["updatedAt"] = updated_at
                return
        raise KeyError(name)

    # --- serving ----------------------------------------------------------------------------------------------
    def _page(self, query: dict[str, str]) -> tuple[int, dict]:
        try:
            limit = int(query.get("limit", "30"))
        except ValueError:
            return 400, {"error": "limit must be an integer"}
        if not 1 <= limit <= 100:
            return 400, {"error": "limit must be between 1 and 100"}
        items = sorted(self.entries, key=lambda e: (e["name"], e.get("version", "")))
        if query.get("version") == "latest":
            items = [e for e in items if e.get("_meta", {}).get(OFFICIAL, {}).get("isLatest")]
        if query.get("updated_since"):
            try:
                since = _timestamp(query["updated_since"])
            except ValueError:
                return 400, {"error": "updated_since must be RFC 3339"}
            items = [e for e in items if _timestamp(e["_meta"][OFFICIAL]["updatedAt"]) > since]
        try:
            offset = _cursor_offset(query.get("cursor", ""))
        except ValueError:
            return 400, {"error": "invalid cursor"}
        chunk = items[offset : offset + limit]
        body_items = []
        for entry in chunk:
            server = {k: v for k, v in entry.items() if k != "_meta"}
            extra = {k: v for k, v in entry.get("_meta", {}).items() if k != OFFICIAL}
            if extra:
                server["_meta"] = extra
            official = dict(entry.get("_meta", {}).get(OFFICIAL, {}))
            official.setdefault("status", entry.get("status") or "active")
            body_items.append({"server": server, "_meta": {OFFICIAL: official}})
        metadata: dict = {"count": len(body_items)}
        if offset + limit < len(items):
            metadata["nextCursor"] = base64.urlsafe_b64encode(json.dumps({"offset": offset + limit}).encode()).decode()
        return 200, {"servers": body_items, "metadata": metadata}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                if parts.path.rstrip("/") not in ("/v0/servers", "/v0.1/servers"):
                    self._send(404, {"error": "not found"})
                    return
                limit = int(query["limit"]) if query.get("limit", "").isdigit() else 30
                try:
                    page = _cursor_offset(query.get("cursor", "")) // max(limit, 1) + 1
                except ValueError:
                    page = 0
                with fake._lock:
                    fake.requests.append({"path": parts.path, "query": query, "page": page})
                    faults = fake._faults.get(page) or []
                    fault = faults.pop(0) if faults else None
                if fault and fault[0] == "status":
                    self._send(int(fault[1]), {"error": "injected failure"})
                    return
                if fault and fault[0] == "slow":
                    time.sleep(fault[1])
                status, body = fake._page(query)
                if fault and fault[0] == "drop":
                    data = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(status, body)

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
