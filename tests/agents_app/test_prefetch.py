"""Package prefetch: a fetch that failed is not run again for every session that picks the same server."""

from agents_app.sandbox import prefetch

BROKEN = ("uvx", ["no such package!"])  # not a requirement uv can parse: fails at once, with no network use


def test_a_failed_fetch_is_remembered_then_tried_again_later(settings, tmp_path):
    settings.SANDBOX_CACHE_DIR = tmp_path / "cache"
    settings.PACKAGE_PREFETCH_RETRY_AFTER_SECONDS = 600
    first = prefetch.prefetch(*BROKEN)
    assert first.startswith("failed: ")
    again = prefetch.prefetch(*BROKEN)
    assert again.startswith("failed ") and " s ago: " in again and not prefetch.is_prefetched(*BROKEN)
    settings.PACKAGE_PREFETCH_RETRY_AFTER_SECONDS = 0
    assert prefetch.prefetch(*BROKEN).startswith("failed: ")  # tried again
