"""A listing's standing in the catalogue, from facts every source has (repository URL, name, status), never from
a list of slugs: is it retired (archived upstream, deprecated, hidden), or a test/demo listing?

Imports use `archived_repository` to mark archived servers deprecated (importers.merge); search ranks test
listings low (registry_app.search.ranking); the planner never chooses a retired server
(agents_app.master.choice).
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

RETIRED_STATUSES = frozenset({"deprecated", "hidden"})
# A repository (or its owner) named as an archive of retired code: modelcontextprotocol/servers-archived,
# "foo-archived", "archived-bar". "archive" alone is not enough: telegram-archive-mcp serves an archive.
_ARCHIVED_PART = re.compile(r"(?:^|[-_.])(?:archived|deprecated|legacy-archive)(?:$|[-_.])", re.IGNORECASE)
# Listings that say of themselves that they are a test, a demo or a template: the last word of the slug or name
# ("smithery-jessicayanwang-test", "mcp-demo", "hello-world"), or a name made only of such words.
_TEST_WORDS = frozenset({"test", "demo", "example", "examples", "sample", "template", "boilerplate", "playground",
                         "helloworld", "starter", "scaffold", "dummy", "toy"})
# "Internet Speed Test", "k6 load test": a server that runs tests, not a test listing.
_TESTING_KINDS = frozenset({"speed", "load", "unit", "stress", "penetration", "integration", "e2e", "ab", "api", "ui"})
_WORD = re.compile(r"[a-z0-9]+")


def archived_repository(url: str | None) -> bool:
    """Does the repository URL point into an archive of retired code (owner or repository name says archived)?"""
    if not url:
        return False
    path = urlparse(url).path if "://" in url else url
    parts = [p for p in path.split("/") if p][:2]
    return any(_ARCHIVED_PART.search(part) for part in parts)


def retired(*, status: str, repository_url: str | None = None) -> bool:
    """Deprecated, hidden, or archived upstream: never a choice for a new agent."""
    return status in RETIRED_STATUSES or archived_repository(repository_url)


def is_test_listing(*, slug: str, name: str = "") -> bool:
    """Is this a test, demo or template listing rather than a server meant for use?"""
    for text in (slug, name):
        words = _WORD.findall((text or "").lower().replace("hello-world", "helloworld").replace("hello world", "helloworld"))
        if not words or words[-1] not in _TEST_WORDS:
            continue
        if words[-1] == "test" and len(words) > 1 and words[-2] in _TESTING_KINDS:
            continue
        return True
    return False
