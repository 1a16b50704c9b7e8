"""Reads of the catalogue: one server with everything, paginated lists, and the search (registry_app.search)."""

from __future__ import annotations

from django.db.models import Count, Prefetch, QuerySet

from mcpagent.errors import ApplicationError, NotFound
from registry_app.models import CredentialRequirement, McpServer
from registry_app.search import (  # noqa: F401 -- the catalogue's reads in one place for callers
    DEFAULT_PARAMS,
    MAX_LIMIT,
    RankingParams,
    SearchHit,
    implied_needs,
    name_index,
    query_clauses,
    server_search,
)
from registry_app.search.ranking import with_summary as _with_summary


def server_get(*, slug: str, include_hidden: bool = False) -> McpServer:
    """One server with its tools, credential requirements, launch recipes and sources (one query each).
    Deprecated servers are shown (agents may still use them; `status` says so); hidden ones only to staff."""
    queryset = McpServer.objects.prefetch_related(
        "tools", Prefetch("credentials", queryset=CredentialRequirement.objects.order_by("-required", "key")),
        "launch_recipes", "sources",
    )
    if not include_hidden:
        queryset = queryset.exclude(status=McpServer.Status.HIDDEN)
    server = queryset.filter(slug=slug).first()
    if server is None:
        raise NotFound("Server not found.", details={"slug": slug})
    return server


def server_list(
    *, category: str | None = None, status: str | None = McpServer.Status.ACTIVE, ordering: str = "name"
) -> QuerySet[McpServer]:
    """Servers for paginated listing. status=None lists every status (staff)."""
    if status is not None and status not in McpServer.Status.values:
        raise ApplicationError(
            f"Unknown status {status!r}.", code="invalid_status", status=400, details={"allowed": McpServer.Status.values}
        )
    queryset = McpServer.objects.all()
    if status is not None:
        queryset = queryset.filter(status=status)
    if category:
        queryset = queryset.filter(categories__contains=[category])
    return _with_summary(queryset).order_by(ordering, "id")
