"""Catalogue search: a plain-language request -> the servers that serve it, best first.

Modules by job: query (parsing a request), names (which servers a query names), retrieval (dense, lexical and
tool-level candidate lists), ranking (fusion, priors, standing, diversification).

server_search (every step measured with benchmarks/bench_search_quality.py; figures in the README):
1. dense: the whole request is embedded and pgvector's HNSW index gives its nearest servers;
2. lexical: PostgreSQL full text with OR'd lexemes (AND semantics miss paraphrases) of the request's rarest
   words, weighted name > description > tools;
   then tool-level matching (_with_tool_matches): each server's distance mixes its document's with its nearest
   tool's (every tool has its own vector), and the request's nearest tools bring their servers in as candidates;
3. reciprocal rank fusion of both lists (k=5, lexical weighted 0.5);
4. a strong boost when the request names a service ("Gmail", "Notion": a server's name, slug or repository
   owner), scaled by how name-like that word is in the catalogue; among those servers a quality prior (official,
   verified, featured, popularity, launch recipe, tools, credentials) decides, elsewhere it only breaks near-ties;
5. aspects: each clause of a multi-step request ("find X, then post it to Y") and each need it implies (a file path
   -> file-system access, "tomorrow" -> the current date, a URL -> fetching pages, "calculate" -> a calculator)
   is searched too, and the final order is diversified over them (xQuAD) so that each gets a server near the top.
"""
from registry_app.search.params import DEFAULT_PARAMS, RankingParams
from registry_app.search.query import (
    GENERIC_NAME_WORDS,
    MAX_LIMIT,
    QUERY_STOPWORDS,
    clean_query,
    implied_needs,
    query_clauses,
    query_words,
)
from registry_app.search.names import core_name, name_index
from registry_app.search.ranking import SearchHit, server_search

__all__ = [
    "DEFAULT_PARAMS", "GENERIC_NAME_WORDS", "MAX_LIMIT", "QUERY_STOPWORDS", "RankingParams", "SearchHit",
    "clean_query", "core_name", "implied_needs", "name_index", "query_clauses", "query_words", "server_search",
]
