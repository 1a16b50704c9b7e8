"""Candidate lists for a query: dense (pgvector HNSW over server vectors), tool-level (each tool's own vector)
and lexical (PostgreSQL full text of the query's rarest words)."""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from registry_app.embeddings import EmbeddingProvider
from registry_app.search.names import _lexemes, _NameIndex
from registry_app.search.params import RankingParams
from registry_app.search.query import QUERY_STOPWORDS, TS_CONFIG
from registry_app.search_index import embedding_expression, vector_literal, vector_type


def _filters(category: str | None, include_inactive: bool, alias: str = "s") -> tuple[str, list]:
    sql, params = [], []
    if not include_inactive:
        sql.append(f"{alias}.status = 'active'")
    if category:
        sql.append(f"{alias}.categories @> ARRAY[%s]::varchar[]")
        params.append(category)
    return (" AND ".join(sql) or "true"), params


def _dense_lists(
    provider: EmbeddingProvider, vectors: np.ndarray, *, limits: list[int], category: str | None, include_inactive: bool
) -> list[list[tuple[int, float]]]:
    """For each query vector, the nearest servers (id, cosine distance), best first, through the model's HNSW index."""
    expr = f"{embedding_expression(provider.dims, alias='e')} <=> %s::{vector_type(provider.dims)}"
    where, params = _filters(category, include_inactive)
    sql = (
        f"SELECT e.server_id, {expr} FROM registry_app_serverembedding e JOIN registry_app_mcpserver s ON s.id = e.server_id"
        f" WHERE e.model = %s AND {where}"
        f" ORDER BY {expr} LIMIT %s"
    )
    lists = []
    with transaction.atomic(), connection.cursor() as cursor:
        # ef_search: candidates the HNSW walk keeps (recall vs time); iterative scans keep filling the LIMIT when
        # the category/status filter removes rows.
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            [str(max(settings.SEARCH_HNSW_EF_SEARCH, *limits))],
        )
        for vector, limit in zip(vectors, limits):
            literal = vector_literal(vector)
            cursor.execute(sql, [literal, provider.name, *params, literal, limit])
            lists.append(cursor.fetchall())
    return lists


# Tool-level matching, one query: the whole request's candidates (its dense and lexical lists, plus the servers of
# its nearest tools through the HNSW index over tool vectors) and each sub-query's dense list; for every (query
# vector, candidate) pair the distance of the candidate's nearest tool, and for the whole request's candidates
# that came without one, their document's distance.
_TOOL_MATCH_SQL = """
WITH q AS MATERIALIZED (SELECT i, v::{vtype} AS v FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, i)),
near AS (
    SELECT t.server_id FROM registry_app_toolembedding te JOIN registry_app_servertool t ON t.id = te.tool_id
    JOIN registry_app_mcpserver s ON s.id = t.server_id
    WHERE te.model = %s AND {where}
    ORDER BY {tool_expr} <=> (SELECT v FROM q WHERE i = 1) LIMIT %s
),
c AS MATERIALIZED (
    SELECT i, id FROM unnest(%s::int[], %s::bigint[]) AS c(i, id) UNION SELECT 1, server_id FROM near
)
SELECT true, c.i, c.id, min({tool_expr} <=> q.v)
FROM c JOIN q ON q.i = c.i JOIN registry_app_servertool t ON t.server_id = c.id
JOIN registry_app_toolembedding te ON te.tool_id = t.id AND te.model = %s
GROUP BY c.i, c.id
UNION ALL
SELECT false, 1, c.id, {server_expr} <=> q.v
FROM c JOIN q ON q.i = 1 JOIN registry_app_serverembedding e ON e.server_id = c.id AND e.model = %s
WHERE c.i = 1 AND NOT c.id = ANY(%s::bigint[])
"""


def _with_tool_matches(
    provider: EmbeddingProvider,
    vectors: np.ndarray,
    dense_lists: list[list[tuple[int, float]]],
    lexical: list[int],
    *,
    params: RankingParams,
    category: str | None,
    include_inactive: bool,
) -> list[list[tuple[int, float]]]:
    """Tool-level matching. A server has one embedding of its document, of which the model reads the first 256
    tokens: most tools of a large server never reach it. Each tool also has its own vector (ToolEmbedding).
    Each dense list (the whole request's, each clause's, each implied need's) is re-ranked by
        (1 - tool_weight) * distance of the server's document + tool_weight * distance of its nearest tool
    (a server without tool vectors keeps its document's distance). The whole request's list is rebuilt from a
    wider pool: its dense and lexical lists plus the servers of its `tool_candidates` nearest tools (so a server
    that only one of its tools matches can enter); each sub-query's list is re-ranked as it is. One query."""
    dims, vtype = provider.dims, vector_type(provider.dims)
    whole = dict(dense_lists[0])
    pairs = [(i + 1, sid) for i, ranked in enumerate(dense_lists) for sid, _ in ranked]
    pairs += [(1, sid) for sid in dict.fromkeys(lexical) if sid not in whole]
    where, filter_params = _filters(category, include_inactive)
    sql = _TOOL_MATCH_SQL.format(
        vtype=vtype, where=where, tool_expr=embedding_expression(dims, alias="te"),
        server_expr=embedding_expression(dims, alias="e"),
    )
    # No transaction and no set_config (two round trips less): pgvector's default ef_search (40) suffices for
    # `tool_candidates` extra candidates.
    with connection.cursor() as cursor:
        cursor.execute(sql, [
            [vector_literal(v) for v in vectors], provider.name, *filter_params, params.tool_candidates,
            [i for i, _ in pairs], [sid for _, sid in pairs], provider.name, provider.name, list(whole),
        ])
        rows = cursor.fetchall()
    document = [dict(ranked) for ranked in dense_lists]
    nearest_tool: list[dict[int, float]] = [{} for _ in dense_lists]
    for is_tool, i, sid, distance in rows:
        (nearest_tool if is_tool else document)[i - 1][sid] = distance
    w = params.tool_weight
    lists = []
    for i, ranked in enumerate(dense_lists):
        combined = {
            sid: d if (t := nearest_tool[i].get(sid)) is None else (1 - w) * d + w * t
            for sid, d in document[i].items()
        }
        lists.append(sorted(combined.items(), key=lambda item: (item[1], item[0]))[: len(ranked)])
    return lists


# Rows the lexical query may match (estimated from its terms' shares): half the catalogue, at most this many, so that
# ranking them stays a few milliseconds (ts_rank costs about 6 us a row: a broad request matching 1,100 servers took
# 7-10 ms with 3,000; the broadest words it then leaves out are the least telling, and the chat benchmark's
# selection and the top 5 of the speed benchmark's requests stayed the same but for swaps of equivalent servers).
MAX_LEXICAL_ROWS = 800


def _lexical_terms(words: list[str], index: _NameIndex, *, max_share: float, max_terms: int) -> list[str]:
    """The query's most distinctive words: known to the catalogue, not too common, rarest first.
    ts_rank weighs every matched term alike (no IDF), so "report" would count as much as "leetcode"."""
    candidates = [w for w in dict.fromkeys(words) if w not in QUERY_STOPWORDS and len(w) <= 60]
    shares = {}
    for word, lexeme in _lexemes(candidates).items():
        share = index.doc_share.get(lexeme) if lexeme and " " not in lexeme else None
        if share is None or share > max_share:
            continue  # a stop word, unknown to the catalogue (matches nothing), or so common it is noise
        shares[word] = share
    terms, rows = [], 0.0
    for word in sorted(shares, key=lambda w: (shares[w], w))[:max_terms]:
        estimate = shares[word] * index.total
        if terms and rows + estimate > min(0.5 * index.total, MAX_LEXICAL_ROWS):
            break  # ts_rank runs on every matching row: keep their number (and the time) bounded
        terms.append(word)
        rows += estimate
    return terms


def _lexical_list(
    terms: list[str], *, limit: int, category: str | None, include_inactive: bool
) -> list[int]:
    if not terms:
        return []
    where, params = _filters(category, include_inactive)
    # Every term is letters/digits only (query_words), so joining with | cannot produce tsquery syntax errors.
    sql = (
        f"SELECT s.id FROM registry_app_mcpserver s, to_tsquery('{TS_CONFIG}', %s) q"
        f" WHERE s.search_vector @@ q AND {where}"
        f" ORDER BY ts_rank('{{0.1, 0.2, 0.4, 1.0}}', s.search_vector, q, 1) DESC, s.id LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [" | ".join(terms), *params, limit])
        return [row[0] for row in cursor.fetchall()]
