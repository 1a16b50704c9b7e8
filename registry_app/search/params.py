"""Knobs of the search ranking; the defaults are the product's (benchmarks/bench_search_quality.py compares
variants)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RankingParams:
    """Knobs of the ranking; the defaults are the product's. The quality benchmark compares variants."""

    rrf_k: int = 5
    dense_weight: float = 1.0
    lexical_weight: float = 0.5
    split_clauses: bool = True  # each clause of a multi-step request is searched too
    implicit_needs: bool = True  # and the needs it implies (a file path -> file system access, ...)
    max_subqueries: int = 6  # clauses searched separately (implied needs come on top)
    clause_weight: float = 0.3  # value of covering one clause of the request (xQuAD-style, see _diversify)
    implied_weight: float = 1.0  # value of covering one implied need
    # P(server serves an aspect) = exp(-(its cosine distance - the best server's) / tau), over the aspect's best 20
    aspect_tau: float = 0.05
    aspect_depth: int = 20
    name_boost: float = 1.0
    prior_weight: float = 0.1  # the prior orders servers of similar relevance...
    named_prior_weight: float = 1.5  # ...and decides among the servers of a service the query names
    dense_candidates: int = 60
    lexical_candidates: int = 60
    max_term_share: float = 0.25  # lexical terms found in more than this share of servers are dropped
    lexical_max_terms: int = 8  # the rarest terms of the query (ts_rank has no IDF: common words would dominate)
    # Tool-level matching (_with_tool_matches): a server's distance to a query becomes
    # (1 - tool_weight) * distance of its document + tool_weight * distance of its nearest tool.
    tool_weight: float = 0.3
    tool_candidates: int = 40  # the whole request's nearest tools (HNSW) whose servers join its candidates
    # A test, demo or template listing ("smithery-...-test") keeps this share of its score: it ranks below real
    # servers of similar relevance, and still appears when nothing else fits.
    test_listing_factor: float = 0.5
    usable_first: bool = True  # a listing with no known tools and no way to start it never ranks first


DEFAULT_PARAMS = RankingParams()
PRIOR_CANDIDATES = 80
