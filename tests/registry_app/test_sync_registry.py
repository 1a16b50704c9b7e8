"""sync_registry against a fake official registry (tests/fakes/registry.py) on 127.0.0.1 serving the shared
snapshot: paging, updated_since, retries with backoff, resuming after an interruption."""

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from registry_app.models import McpServer, ServerSource, SyncState
from tests.fakes.registry import FakeRegistry, load_snapshot
from tests.shared import SHARED

SNAPSHOT = SHARED / "catalogue" / "official-registry" / "production_servers.json"
pytestmark = pytest.mark.skipif(not SNAPSHOT.is_file(), reason=f"shared registry snapshot not at {SNAPSHOT}")
LATEST = 461


@pytest.fixture
def empty_catalogue(db):
    """An empty catalogue inside the test's transaction (the session may hold the committed bundled one)."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE registry_app_mcpserver, registry_app_syncstate CASCADE")


@pytest.fixture(scope="module")
def snapshot() -> list[dict]:
    return load_snapshot(SNAPSHOT)


@pytest.fixture
def registry(snapshot):
    with FakeRegistry(snapshot) as fake:
        yield fake


def sync(registry: FakeRegistry, **options) -> str:
    out = io.StringIO()
    options = {"page_size": 100, "backoff": 0.01, **options}
    call_command("sync_registry", url=registry.url, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def summary(output: str) -> dict[str, int]:
    line = [text for text in output.splitlines() if text.startswith("registry-api:")][-1]
    words = r"(\d+) (pages|created|updated|merged|unchanged|skipped|retries)"
    return {word: int(n) for n, word in re.findall(words, line)}


def test_full_sync_pages_through_everything_then_asks_only_for_updates(empty_catalogue, registry):
    first = sync(registry, page_size=50)
    assert summary(first) == {"pages": 10, "created": LATEST, "updated": 0, "merged": 0, "unchanged": 0,
                              "skipped": 0, "retries": 0}
    assert [r["query"].get("cursor") is None for r in registry.requests] == [True] + [False] * 9
    assert all(r["query"]["limit"] == "50" and r["query"]["version"] == "latest" for r in registry.requests)
    assert ServerSource.objects.filter(source="registry-api").count() == LATEST
    notion = McpServer.objects.get(sources__source_id="com.notion/mcp")
    assert notion.launch_recipes.count() == 2 and notion.official
    state = SyncState.objects.get(url=registry.url)
    assert (state.cursor, state.watermark) == ("", "2025-09-30T16:26:24.948927522Z")  # newest updatedAt seen

    registry.requests.clear()
    registry.update("com.notion/mcp", updated_at="2025-10-02T08:00:00Z", description="Official Notion MCP server v2")
    second = sync(registry)
    assert registry.requests[0]["query"]["updated_since"] == "2025-09-30T16:26:24.948927522Z"
    assert summary(second) == {"pages": 1, "created": 0, "updated": 1, "merged": 0, "unchanged": 0, "skipped": 0,
                               "retries": 0}
    notion.refresh_from_db()
    assert notion.description == "Official Notion MCP server v2"
    assert SyncState.objects.get(url=registry.url).watermark == "2025-10-02T08:00:00Z"
    assert summary(sync(registry))["created"] == 0


def test_since_limits_the_sync(empty_catalogue, registry):
    output = sync(registry, since="2025-09-29")
    assert registry.requests[0]["query"]["updated_since"] == "2025-09-29T00:00:00Z"
    created = summary(output)["created"]
    assert 0 < created < LATEST
    assert McpServer.objects.count() == created
    with pytest.raises(CommandError, match="--since must be an RFC 3339 time"):
        sync(registry, since="last tuesday")


def test_transient_failures_are_retried(empty_catalogue, registry):
    registry.fail(page=2, times=2, status=503)
    registry.drop(page=3, times=1)
    output = sync(registry, page_size=100)
    assert summary(output)["retries"] == 3
    assert summary(output)["created"] == LATEST
    assert [r["page"] for r in registry.requests] == [1, 2, 2, 2, 3, 3, 4, 5]


def test_an_interrupted_sync_resumes_at_the_next_page(empty_catalogue, registry):
    registry.drop(page=4, times=10)  # the connection keeps dropping mid-body on page 4
    with pytest.raises(CommandError, match=r"failed 3 times; last error: RemoteProtocolError.*3 pages of this pass "
                                           r"were imported and kept; run sync_registry again"):
        sync(registry, page_size=50, retries=3)
    state = SyncState.objects.get(url=registry.url)
    assert state.pages == 3 and state.cursor and "RemoteProtocolError" in state.last_error
    assert McpServer.objects.count() == 150  # pages 1-3 committed, page 4 not half-imported

    registry.clear_faults()
    registry.requests.clear()
    output = sync(registry, page_size=50)
    assert "resuming the interrupted sync" in output
    assert registry.requests[0]["query"]["cursor"] == state.cursor  # not page 1 again
    assert [r["page"] for r in registry.requests] == [4, 5, 6, 7, 8, 9, 10]
    assert summary(output)["created"] == LATEST - 150
    assert McpServer.objects.count() == LATEST
    assert SyncState.objects.get(url=registry.url).cursor == ""


def test_restart_discards_the_saved_cursor(empty_catalogue, registry):
    registry.drop(page=2, times=10)
    with pytest.raises(CommandError):
        sync(registry, page_size=100, retries=1)
    registry.clear_faults()
    registry.requests.clear()
    output = sync(registry, page_size=100, restart=True)
    assert registry.requests[0]["page"] == 1
    assert summary(output) == {"pages": 5, "created": LATEST - 100, "updated": 0, "merged": 0, "unchanged": 100,
                               "skipped": 0, "retries": 0}


def test_client_errors_fail_at_once(empty_catalogue, registry):
    registry.fail(page=1, times=5, status=404)
    with pytest.raises(CommandError, match="answered HTTP 404"):
        sync(registry)
    assert len(registry.requests) == 1
    with pytest.raises(CommandError, match="--url must be an http"):
        call_command("sync_registry", url="ftp://example.com", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--page-size must be between 1 and 100"):
        sync(registry, page_size=500)


def test_timeouts_are_retried(empty_catalogue, registry):
    registry.slow(page=1, times=1, seconds=1.0)
    output = sync(registry, timeout=0.3, max_pages=1)
    assert summary(output)["retries"] == 1 and summary(output)["created"] == 100
    assert "stopped after 1 pages (--max-pages)" in output


def test_sync_merges_with_the_imported_snapshot(empty_catalogue, registry):
    out = io.StringIO()
    call_command("import_catalogue", str(SNAPSHOT), stdout=out)
    output = sync(registry)
    assert summary(output)["merged"] == LATEST
    assert McpServer.objects.count() == LATEST
    notion = McpServer.objects.get(sources__source_id="com.notion/mcp", sources__source="registry-api")
    assert sorted(notion.sources.values_list("source", flat=True)) == ["official", "registry-api"]
