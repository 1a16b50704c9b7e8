"""Ranking: reciprocal rank fusion of the candidate lists, name boosts, the quality prior, standing (test and
demo listings low; a listing with neither known tools nor a launch recipe never first) and diversification over
the request's aspects."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, Prefetch, QuerySet

from mcpagent.metrics import SEARCH_DURATION
from registry_app.embeddings import EmbeddingError, embed_queries, get_provider
from registry_app.models import CredentialRequirement, McpServer
from registry_app.search.names import _name_matches, name_index
from registry_app.search.params import DEFAULT_PARAMS, PRIOR_CANDIDATES, RankingParams
from registry_app.search.query import MAX_LIMIT, clean_query, implied_needs, query_clauses, query_words
from registry_app.search.retrieval import _dense_lists, _filters, _lexical_list, _lexical_terms, _with_tool_matches
from registry_app.standing import is_test_listing

logger = logging.getLogger(__name__)


@dataclass
class SearchHit:
    server: McpServer
    score: float
    dense_rank: int | None = None  # best rank over the query's dense lists (1 = nearest)
    lexical_rank: int | None = None
    name_match: float = 0.0  # 0..1 before weighting: 1 = the query names this service exactly
    prior: float = 0.0  # 0..1 quality prior
    components: dict = field(default_factory=dict)


# Each IN reads only the candidates' rows (one index probe per candidate); correlated EXISTS subqueries were planned
# as scans of the whole recipe and credential tables (1.5 ms vs 0.9 ms for 90 candidates).
_PRIOR_SQL = """
SELECT s.id, s.official, s.verified, s.featured, s.popularity,
       s.id IN (SELECT server_id FROM registry_app_launchrecipe WHERE server_id = ANY(%s)),
       s.id IN (SELECT server_id FROM registry_app_servertool WHERE server_id = ANY(%s)),
       s.id IN (SELECT server_id FROM registry_app_credentialrequirement WHERE server_id = ANY(%s)),
       s.id IN (SELECT server_id FROM registry_app_launchrecipe WHERE server_id = ANY(%s) AND kind <> 'remote')
       OR s.id IN (SELECT server_id FROM registry_app_credentialrequirement WHERE server_id = ANY(%s)
                   AND location = 'header'),
       s.slug, s.name
FROM registry_app_mcpserver s WHERE s.id = ANY(%s) AND {where}
"""


@dataclass
class _Standing:
    """What the ranking needs to know of a candidate beyond its relevance."""

    prior: float  # 0..1 quality prior
    test_listing: bool  # a test, demo or template listing (registry_app.standing.is_test_listing)
    bare: bool  # no known tools and no way to start it (no package, no remote that takes a key)


def _standings(ids: list[int], category: str | None, include_inactive: bool) -> dict[int, _Standing]:
    """Quality prior, 0..1: official 0.3, verified 0.25, featured 0.1, popularity 0.15, and completeness of the
    entry: a launch recipe (an agent can start it) 0.1, known tools 0.05, declared credentials 0.05; and the
    listing's standing. A remote counts as a way to start a server only when it takes a header a user fills in
    (without one it signs users in with OAuth, which an agent cannot do)."""
    where, params = _filters(category, include_inactive)
    with connection.cursor() as cursor:
        cursor.execute(_PRIOR_SQL.format(where=where), [ids] * 6 + params)
        return {
            sid: _Standing(
                prior=0.3 * official + 0.25 * verified + 0.1 * featured + 0.15 * min(max(pop or 0.0, 0.0), 1.0)
                + 0.1 * runnable + 0.05 * has_tools + 0.05 * has_credentials,
                test_listing=is_test_listing(slug=slug, name=name),
                bare=not has_tools and not startable,
            )
            for sid, official, verified, featured, pop, runnable, has_tools, has_credentials, startable, slug, name
            in cursor.fetchall()
        }


def _usable_first(top: list[tuple[int, float]], standings: dict[int, _Standing]) -> list[tuple[int, float]]:
    """A listing with no known tools and no way to start it never ranks first: the best usable one below it takes
    its place (scores stay with the positions, so they never increase down the list)."""
    if not top or not standings[top[0][0]].bare:
        return top
    usable = next((i for i, (sid, _) in enumerate(top) if not standings[sid].bare), None)
    if usable is None:
        return top
    order = [top[usable][0]] + [sid for i, (sid, _) in enumerate(top) if i != usable]
    return [(sid, score) for sid, (_, score) in zip(order, top)]


def _rank_of(lists: list[list[int]]) -> dict[int, int]:
    best: dict[int, int] = {}
    for ranked in lists:
        for rank, sid in enumerate(ranked, start=1):
            if rank < best.get(sid, 1 << 30):
                best[sid] = rank
    return best


@SEARCH_DURATION.time()
def server_search(
    *,
    query: str,
    limit: int = 10,
    category: str | None = None,
    include_inactive: bool = False,
    params: RankingParams = DEFAULT_PARAMS,
) -> list[SearchHit]:
    """Servers for a plain-language request, best first. Deprecated and hidden servers only with include_inactive
    (staff tools). Raises ApplicationError (400) for an empty or over-long query."""
    text = clean_query(query)
    limit = max(1, min(int(limit), MAX_LIMIT))
    category = (category or "").strip() or None
    words = query_words(text)
    index = name_index.get()

    # 1. dense lists: the whole request, then each clause of a multi-step request and each need it implies
    clauses = query_clauses(text)[: params.max_subqueries] if params.split_clauses else []
    implied = [n for n in implied_needs(text) if n not in clauses] if params.implicit_needs else []
    subqueries = clauses + implied
    provider = get_provider()
    dense_lists: list[list[tuple[int, float]]] = []
    try:
        vectors = embed_queries(provider, [text, *subqueries])
        dense_lists = _dense_lists(
            provider, vectors, limits=[max(params.dense_candidates, limit)] + [params.aspect_depth] * len(subqueries),
            category=category, include_inactive=include_inactive,
        )
    except EmbeddingError:
        # A remote embedding service being down degrades search to lexical + names rather than failing it.
        logger.warning("dense search skipped: embedding provider %s failed", provider.name)

    # 2. lexical list
    terms = _lexical_terms(words, index, max_share=params.max_term_share, max_terms=params.lexical_max_terms)
    lexical = _lexical_list(
        terms, limit=max(params.lexical_candidates, limit), category=category, include_inactive=include_inactive
    )
    if dense_lists and params.tool_weight > 0:
        dense_lists = _with_tool_matches(
            provider, vectors, dense_lists, lexical, params=params, category=category, include_inactive=include_inactive
        )
    whole_dense = [sid for sid, _ in dense_lists[0]] if dense_lists else []
    aspect_lists = dense_lists[1:]

    # 3. reciprocal rank fusion of the whole request's lists, normalised so that first in both = 1.0
    k = params.rrf_k
    fused: dict[int, float] = {}
    for weight, ranked in ((params.dense_weight, whole_dense), (params.lexical_weight, lexical)):
        for rank, sid in enumerate(ranked, start=1):
            fused[sid] = fused.get(sid, 0.0) + weight / (k + rank)
    best_possible = (
        (params.dense_weight if whole_dense else 0.0) + (params.lexical_weight if lexical else 0.0)
    ) / (k + 1) or 1.0

    # 4. named services and the quality prior
    named = _name_matches(words, index)
    aspects = [
        (params.clause_weight if i < len(clauses) else params.implied_weight,
         {sid: math.exp(-(distance - ranked[0][1]) / params.aspect_tau) for sid, distance in ranked[: params.aspect_depth]})
        for i, ranked in enumerate(aspect_lists)
        if ranked
    ]
    candidates = set(fused) | set(named) | {sid for _, served in aspects for sid in served}
    if not candidates:
        return []
    if len(candidates) > PRIOR_CANDIDATES + limit:
        # The prior only reorders servers of similar relevance: read it for the best candidates only.
        def rough(sid: int) -> float:
            return (
                fused.get(sid, 0.0) / best_possible + 2 * params.name_boost * named.get(sid, 0.0)
                + max((w * served.get(sid, 0.0) for w, served in aspects), default=0.0)
            )

        candidates = set(sorted(candidates, key=rough, reverse=True)[: PRIOR_CANDIDATES + limit])
    standings = _standings(list(candidates), category, include_inactive)  # also drops filtered-out name matches
    priors = {sid: standing.prior for sid, standing in standings.items()}
    base = {
        sid: (fused.get(sid, 0.0) / best_possible
              + params.name_boost * named.get(sid, 0.0)
              + (params.prior_weight + params.named_prior_weight * named.get(sid, 0.0)) * priors[sid])
        * (params.test_listing_factor if standings[sid].test_listing else 1.0)
        for sid in standings
    }
    top = _diversify(base, aspects, limit)
    if params.usable_first:
        top = _usable_first(top, standings)
    dense_rank = _rank_of([[sid for sid, _ in ranked] for ranked in dense_lists])
    lexical_rank = _rank_of([lexical])

    servers = {s.id: s for s in with_summary(McpServer.objects.filter(id__in=[sid for sid, _ in top]))}
    return [
        SearchHit(
            server=servers[sid],
            score=round(score, 6),
            dense_rank=dense_rank.get(sid),
            lexical_rank=lexical_rank.get(sid),
            name_match=named.get(sid, 0.0),
            prior=round(priors[sid], 4),
            components={"base": round(base[sid], 6), "subqueries": subqueries},
        )
        for sid, score in top
        if sid in servers
    ]


def _diversify(base: dict[int, float], aspects: list[tuple[float, dict[int, float]]], limit: int) -> list[tuple[int, float]]:
    """Order servers by base score plus the value of the aspects (clauses, implied needs) they serve that no server
    above them serves yet: explicit query-aspect diversification (xQuAD, Santos et al., WWW 2010). A request that
    needs a file system, a chart and a search engine gets one good server for each near the top, instead of five
    search engines. Without aspects this is a plain sort by base score."""
    if not aspects:
        ranked = sorted(base.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:limit]
    uncovered = [1.0] * len(aspects)  # probability that no server chosen so far serves the aspect
    remaining = dict(base)
    chosen: list[tuple[int, float]] = []
    ceiling = float("inf")
    while remaining and len(chosen) < limit:
        best_sid, best_value = None, -1.0
        for sid, value in remaining.items():
            value += sum(weight * served.get(sid, 0.0) * left for (weight, served), left in zip(aspects, uncovered))
            if value > best_value or (value == best_value and sid < best_sid):
                best_sid, best_value = sid, value
        del remaining[best_sid]
        for i, (_, served) in enumerate(aspects):
            uncovered[i] *= 1.0 - served.get(best_sid, 0.0)
        ceiling = min(ceiling, best_value)  # scores shown never increase down the list
        chosen.append((best_sid, ceiling))
    return chosen


def with_summary(queryset: QuerySet[McpServer]) -> QuerySet[McpServer]:
    """Adds tools_count and the credential requirements (prefetched) that list and search results show. The
    search columns (a document of up to 12,000 characters and its tsvector) are not read: nothing shown uses them."""
    return queryset.defer("search_document", "search_vector").annotate(
        tools_count=Count("tools", distinct=True)
    ).prefetch_related(
        Prefetch("credentials", queryset=CredentialRequirement.objects.order_by("-required", "key"))
    )
