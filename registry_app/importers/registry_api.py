"""Client for the official MCP registry API (`GET /v0/servers`), used by `sync_registry`.

Wire format (modelcontextprotocol/registry, docs/reference/api/openapi.yaml):

    GET {base}/v0/servers?limit=N&cursor=C&updated_since=RFC3339&version=latest
    200 {"servers": [{"server": {...server.json...},
                      "_meta": {"io.modelcontextprotocol.registry/official":
                                {"status", "publishedAt", "updatedAt", "isLatest"}}}],
         "metadata": {"nextCursor": "...", "count": N}}

Cursors are opaque; no nextCursor means the last page. Transient failures (connection errors, timeouts,
5xx, 429) are retried with exponential backoff; anything else fails at once with RegistryError.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from .common import Problem, RecordError, ServerRecord, finish
from .official import record_from_server_json, split_entry

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class RegistryError(Exception):
    """The registry could not be read (after retries, or with a non-retryable answer)."""


def parse_timestamp(value: str) -> datetime:
    """RFC 3339, also with nanoseconds ('2025-09-11T22:25:50.737872147Z') or a bare date; ValueError if not."""
    raw = value.strip()
    if len(raw) == 10:
        raw += "T00:00:00Z"
    raw = raw.replace("z", "Z").replace("Z", "+00:00")
    fraction = re.search(r"\.(\d+)", raw)
    if fraction:  # Python parses at most 6 fractional digits
        raw = raw[: fraction.start(1)] + fraction.group(1)[:6].ljust(6, "0") + raw[fraction.end(1):]
    parsed = datetime.fromisoformat(raw)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a 'Z', as the registry's updated_since expects."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Page:
    records: list[ServerRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    next_cursor: str = ""
    max_updated: str = ""
    ignored: int = 0  # entries that are not the latest version


class RegistryClient:
    """Fetches pages with retries. `sleep` is injectable so tests need not wait for real backoff delays."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, max_attempts: int = 5, backoff: float = 1.0,
                 max_backoff: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.retries = 0
        self._http = httpx.Client(timeout=timeout, headers={"Accept": "application/json",
                                                            "User-Agent": "mcpagent-sync/1"})

    def close(self) -> None:
        self._http.close()

    def fetch_page(self, *, cursor: str = "", since: str = "", limit: int = 100) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit, "version": "latest"}
        if cursor:
            params["cursor"] = cursor
        if since:
            params["updated_since"] = since
        url = f"{self.base_url}/v0/servers"
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after = 0.0
            try:
                response = self._http.get(url, params=params)
            except httpx.TransportError as exc:  # connect/read errors, timeouts, dropped connections
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code == 200:
                    try:
                        payload = response.json()
                    except ValueError:
                        raise RegistryError(f"{url} answered 200 with a body that is not JSON") from None
                    if not isinstance(payload, dict) or not isinstance(payload.get("servers"), list):
                        raise RegistryError(f"{url} answered with an unexpected shape (no 'servers' list)")
                    return payload
                last_error = f"HTTP {response.status_code}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise RegistryError(f"{url} answered {last_error}: {response.text[:200]}")
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt == self.max_attempts:
                break
            delay = min(self.max_backoff, max(retry_after, self.backoff * 2 ** (attempt - 1)))
            delay += random.uniform(0, delay / 4)  # jitter: many clients do not retry in lockstep
            self.retries += 1
            logger.warning("registry request failed (%s); retry %d/%d in %.1f s", last_error, attempt,
                           self.max_attempts - 1, delay)
            self.sleep(delay)
        raise RegistryError(f"{url} failed {self.max_attempts} times; last error: {last_error}")


def _retry_after(value: str | None) -> float:
    try:
        return min(float(value), 300.0) if value else 0.0
    except ValueError:
        return 0.0


def page_records(payload: dict[str, Any], *, page_number: int) -> Page:
    """Normalised records of one API page (source "registry-api"), its next cursor and newest updatedAt."""
    page = Page()
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    page.next_cursor = str(metadata.get("nextCursor") or metadata.get("next_cursor") or "")
    newest: datetime | None = None
    for index, entry in enumerate(payload.get("servers") or []):
        location = f"registry page {page_number} item {index}"
        server, meta = split_entry(entry)
        if server is None:
            page.problems.append(Problem(location, "not a server object"))
            continue
        updated = str(meta.get("updatedAt") or "")
        if updated:
            try:
                stamp = parse_timestamp(updated)
            except ValueError:
                page.problems.append(Problem(location, f"unparsable updatedAt {updated[:40]!r}", skipped=False))
            else:
                if newest is None or stamp > newest:
                    newest, page.max_updated = stamp, updated
        if meta.get("isLatest") is False:
            page.ignored += 1
            continue
        warnings: list[str] = []
        try:
            record = record_from_server_json(server, meta, source="registry-api", location=location,
                                             warnings=warnings)
            page.records.append(finish(record, warnings, page.problems))
        except RecordError as exc:
            page.problems.append(Problem(location, str(exc)))
    return page
