"""Reads of the catalogue: hybrid server search, one server with everything, paginated lists.

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

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Count, Prefetch, QuerySet

from mcpagent.errors import ApplicationError, NotFound
from mcpagent.metrics import SEARCH_DURATION
from registry_app import search_index
from registry_app.search_index import embedding_expression, vector_literal, vector_type
from registry_app.embeddings import EmbeddingError, EmbeddingProvider, embed_queries, get_provider
from registry_app.models import CredentialRequirement, McpServer

logger = logging.getLogger(__name__)

MAX_LIMIT = 100
TS_CONFIG = search_index.TS_CONFIG

# Words that say nothing about which server is wanted: dropped from the lexical query and from name matching.
QUERY_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be been before being below between both but by
    can could did do does doing down during each few for from further had has have having he her here hers him his
    how i if in into is it its itself just let me more most my myself no nor not now of off on once only or other
    our ours out over own please same she should so some such than that the their them then there these they this
    those through to too under until up very via was we were what when where which while who whom why will with
    would you your yours yourself want wants need needs like help get got make makes using use used something thing
    things way able etc mcp server servers tool tools""".split()
)
# Words in server names that do not identify a service ("Slack MCP Server" is "slack").
GENERIC_NAME_WORDS = frozenset(
    """mcp server servers model context protocol modelcontextprotocol the for a an of and with to in on by api apis
    integration integrations connector tool tools toolkit toolset official unofficial plugin bridge client wrapper
    service services sdk py js ts node nodejs python go golang rs rust java remote local lite simple basic
    community app ai agent v1 v2 v3 io com org dev hq inc labs lab""".split()
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_LEADING_CONNECTIVE = re.compile(r"^(?:and|then|also|plus|finally|next|after that|afterwards)\b[\s,]*", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Clause boundaries of a multi-step request: sentence ends, semicolons, ", then", " and then", ...
_CLAUSE_BOUNDARY = re.compile(
    r"(?:[.!?;:]+(?:\s+|$))|\n+|,\s*(?:and\s+|then\s+|and\s+then\s+)?|\s+(?:and\s+then|then|and\s+also|and|also|plus)\s+",
    re.IGNORECASE,
)


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


DEFAULT_PARAMS = RankingParams()
PRIOR_CANDIDATES = 80


@dataclass
class SearchHit:
    server: McpServer
    score: float
    dense_rank: int | None = None  # best rank over the query's dense lists (1 = nearest)
    lexical_rank: int | None = None
    name_match: float = 0.0  # 0..1 before weighting: 1 = the query names this service exactly
    prior: float = 0.0  # 0..1 quality prior
    components: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# Query parsing


def clean_query(query: str | None) -> str:
    """Validate and normalise a search text: 400 for empty or over-long input, never a database error."""
    text = _CONTROL.sub(" ", query or "")
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise ApplicationError("The search query is empty.", code="empty_query", status=400)
    limit = settings.SEARCH_MAX_QUERY_CHARS
    if len(text) > limit:
        raise ApplicationError(
            f"The search query is too long ({len(text)} characters; the limit is {limit}).",
            code="query_too_long",
            status=400,
            details={"length": len(text), "max_length": limit},
        )
    return text


def query_words(text: str) -> list[str]:
    """Lower-case words, in order. Only letters and digits survive, so no tsquery or regex syntax can get through."""
    return [w.lower() for w in _WORD.findall(text)]


def query_clauses(text: str) -> list[str]:
    """The parts of a multi-step request that could each need a different server (at least 3 words each)."""
    parts = [_LEADING_CONNECTIVE.sub("", p.strip()) for p in _CLAUSE_BOUNDARY.split(text) if p and p.strip()]
    clauses = [p for p in parts if len(_WORD.findall(p)) >= 3]
    return clauses if len(clauses) > 1 else []


_FILE_EXTENSIONS = "md|markdown|txt|csv|tsv|json|jsonl|html?|pdf|docx?|xlsx?|pptx?|png|jpe?g|gif|svg|py|js|ts|ya?ml|xml|log|bib|zip"
_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
# Needs a request implies without naming them. A workflow that writes "report.md" needs file-system access, one
# that says "tomorrow" needs today's date, ... Each becomes one more sub-query, described as a capability (never
# as a server name).
IMPLICIT_NEEDS: tuple[tuple[re.Pattern, str], ...] = (
    (
        re.compile(rf"(?:^|[\s(\"'])(?:~|\.{{1,2}})?/[\w.\-]+/|\b[\w\-]+\.(?:{_FILE_EXTENSIONS})\b|\b(?:directory|folder)\b", re.I),
        "read and write files and directories on the local file system",
    ),
    (
        re.compile(
            rf"\b(?:today|tomorrow|yesterday|tonight|this (?:week|weekend|month|year)|next (?:week|month|year|{_WEEKDAYS})"
            r"|(?:last|past) (?:\d+|few|two|three|four|five|seven|several) ?(?:days?|weeks?|months?|years?|hours?|hrs?|h|d)"
            r"|current (?:date|time)|what time|what day)\b",
            re.I,
        ),
        "get the current date and time; convert between time zones",
    ),
    (re.compile(r"https?://\S+|\bwww\.\w", re.I), "fetch a web page from a URL and extract its content"),
    (
        re.compile(r"\b(?:calculate|calculation|compute|arithmetic|percentage|average|estimate|bmi|sum of)\b", re.I),
        "calculator: evaluate mathematical expressions",
    ),
)


def implied_needs(text: str) -> list[str]:
    return [need for pattern, need in IMPLICIT_NEEDS if pattern.search(text)]


# --------------------------------------------------------------------------------------------------------------
# Name index: which servers a word or phrase in the query names, and how name-like each word is in the catalogue


def core_name(value: str) -> tuple[str, ...]:
    """The identifying words of a server name or slug: "Slack MCP Server" -> ("slack",)."""
    words = query_words(search_index.humanise_identifier(value))
    return tuple(w for w in words if w not in GENERIC_NAME_WORDS)


def _repository_parts(url: str) -> tuple[str, str]:
    path = urlparse(url).path if "://" in url else url
    parts = [p for p in path.split("/") if p]
    return (parts[0].lower(), parts[1].lower()) if len(parts) >= 2 else ("", "")


@dataclass
class _NameIndex:
    phrases: dict[str, set[int]]  # core phrase without spaces -> server ids
    nameness: dict[str, float]  # word -> share of the servers mentioning it that have it in their name
    doc_share: dict[str, float]  # lexeme -> share of all servers whose text contains it
    total: int  # active servers with a search vector
    generation: int
    built_at: float


class _NameIndexHolder:
    """Built lazily per process (about 1 s for 6,000 servers); rebuilt at once after a search-index refresh in this
    process, and in the background every `ttl` seconds (edits made by other processes), serving the old one meanwhile."""

    ttl = 600.0

    def __init__(self, build):
        # build() -> an index with .generation and .built_at (registry_app.vocabulary keeps its own this way).
        self._build = build
        self._lock = threading.Lock()
        self._index: _NameIndex | None = None
        self._refreshing = False

    def get(self) -> _NameIndex:
        index = self._index
        if index is None or index.generation != search_index.generation():
            with self._lock:
                index = self._index
                if index is None or index.generation != search_index.generation():
                    index = self._index = self._build()
        elif time.monotonic() - index.built_at > self.ttl and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh, args=(index.generation,), daemon=True).start()
        return index

    def _refresh(self, generation: int) -> None:
        try:
            fresh = self._build()
            with self._lock:
                # A refresh in this process meanwhile has its own, newer index.
                if search_index.generation() == generation == fresh.generation:
                    self._index = fresh
        except Exception:  # a failed background refresh keeps the old index; the next request tries again
            logger.exception("name index refresh failed")
        finally:
            self._refreshing = False
            connections.close_all()

    def clear(self) -> None:
        self._index = None


name_index = _NameIndexHolder(build=lambda: _build_name_index())
CatalogueIndexHolder = _NameIndexHolder  # for other per-process indexes of the catalogue
# Document frequencies are estimated from a sample of this many servers: enough for the shares we use, and the
# build stays about a second at 100,000 servers.
DF_SAMPLE = 8000


def _build_name_index() -> _NameIndex:
    generation = search_index.generation()
    phrases: dict[str, set[int]] = {}
    words: set[str] = set()
    rows = McpServer.objects.filter(status=McpServer.Status.ACTIVE).values_list("id", "name", "slug", "repository_url")
    for sid, name, slug, repo in rows.iterator(chunk_size=5000):
        owner, repo_name = _repository_parts(repo)
        keys = {core_name(name), core_name(slug), core_name(repo_name), core_name(owner)}
        for key in keys:
            if key and len(key) <= 4:
                phrases.setdefault("".join(key), set()).add(sid)
                words.update(key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM registry_app_mcpserver WHERE status = 'active' AND search_vector IS NOT NULL")
        total = cursor.fetchone()[0] or 1
        sample = ""
        if total > DF_SAMPLE:
            sample = f" TABLESAMPLE BERNOULLI ({100.0 * DF_SAMPLE / total:.4f}) REPEATABLE (7)"
        active = f"SELECT search_vector FROM registry_app_mcpserver{sample} WHERE status = 'active' AND search_vector IS NOT NULL"
        cursor.execute(f"SELECT count(*) FROM ({active}) AS sampled")
        sampled = cursor.fetchone()[0] or 1
        # Document frequencies of every lexeme, overall and in names (weight A), one pass each.
        cursor.execute("SELECT word, ndoc FROM ts_stat(%s)", [active])
        df_all = dict(cursor.fetchall())
        cursor.execute("SELECT word, ndoc FROM ts_stat(%s, 'a')", [active])
        df_name = dict(cursor.fetchall())
    word_list = sorted(words)
    lexeme = _lexemes(word_list)
    nameness = {}
    for word in word_list:
        lex = lexeme.get(word, "")
        if lex and " " not in lex and df_all.get(lex):
            nameness[word] = df_name.get(lex, 0) / df_all[lex]
        else:
            nameness[word] = 0.0 if not lex else 1.0  # stop words have no lexeme; odd tokens are names
    return _NameIndex(
        phrases=phrases,
        nameness=nameness,
        doc_share={w: n / sampled for w, n in df_all.items()},
        total=total,
        generation=generation,
        built_at=time.monotonic(),
    )


def _name_matches(words: list[str], index: _NameIndex) -> dict[int, float]:
    """Servers the query names: {server id: strength 0..1}. Phrases of up to 4 words, spaces ignored
    ("google drive" = "googledrive"). A one-word name counts fully only if the catalogue uses that word mostly as a
    name (Slack, Gmail, Notion) rather than as an ordinary word (send, create, data)."""
    found: dict[int, float] = {}
    content = [w for w in words if w not in QUERY_STOPWORDS]
    for n in range(4, 0, -1):
        for start in range(len(content) - n + 1):
            gram = content[start : start + n]
            ids = index.phrases.get("".join(gram))
            if not ids:
                continue
            if n > 1:
                strength = 1.0
            else:
                # nameness: 0.05 or less -> an ordinary word; 0.25 or more -> a name.
                strength = min(1.0, max(0.0, (index.nameness.get(gram[0], 1.0) - 0.05) / 0.20))
            if strength <= 0:
                continue
            for sid in ids:
                found[sid] = max(found.get(sid, 0.0), strength)
    return found


# --------------------------------------------------------------------------------------------------------------
# Retrieval


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
_lexeme_cache: dict[str, str] = {}
_LEXEME_SQL = (
    f"SELECT w, coalesce((SELECT string_agg(l, ' ') FROM unnest(tsvector_to_array(to_tsvector('{TS_CONFIG}', w))) l), '')"
    " FROM unnest(%s::text[]) AS w"
)


def _lexemes(words: list[str]) -> dict[str, str]:
    """Each word's lexeme under TS_CONFIG ('' for a stop word), asked from PostgreSQL so it matches the index."""
    missing = [w for w in dict.fromkeys(words) if w not in _lexeme_cache]
    if missing:
        with connection.cursor() as cursor:
            cursor.execute(_LEXEME_SQL, [missing])
            if len(_lexeme_cache) > 50_000:
                _lexeme_cache.clear()
            _lexeme_cache.update(cursor.fetchall())
    return {w: _lexeme_cache.get(w, "") for w in words}


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


# Each IN reads only the candidates' rows (one index probe per candidate); correlated EXISTS subqueries were planned
# as scans of the whole recipe and credential tables (1.5 ms vs 0.9 ms for 90 candidates).
_PRIOR_SQL = """
SELECT s.id, s.official, s.verified, s.featured, s.popularity,
       s.id IN (SELECT server_id FROM registry_app_launchrecipe WHERE server_id = ANY(%s)),
       s.id IN (SELECT server_id FROM registry_app_servertool WHERE server_id = ANY(%s)),
       s.id IN (SELECT server_id FROM registry_app_credentialrequirement WHERE server_id = ANY(%s))
FROM registry_app_mcpserver s WHERE s.id = ANY(%s) AND {where}
"""


def _priors(ids: list[int], category: str | None, include_inactive: bool) -> dict[int, float]:
    """Quality prior, 0..1: official 0.3, verified 0.25, featured 0.1, popularity 0.15, and completeness of the
    entry: a launch recipe (an agent can start it) 0.1, known tools 0.05, declared credentials 0.05."""
    where, params = _filters(category, include_inactive)
    with connection.cursor() as cursor:
        cursor.execute(_PRIOR_SQL.format(where=where), [ids] * 4 + params)
        return {
            sid: 0.3 * official + 0.25 * verified + 0.1 * featured + 0.15 * min(max(pop or 0.0, 0.0), 1.0)
            + 0.1 * runnable + 0.05 * has_tools + 0.05 * has_credentials
            for sid, official, verified, featured, pop, runnable, has_tools, has_credentials in cursor.fetchall()
        }


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
    priors = _priors(list(candidates), category, include_inactive)  # also drops filtered-out name matches
    base = {
        sid: fused.get(sid, 0.0) / best_possible
        + params.name_boost * named.get(sid, 0.0)
        + (params.prior_weight + params.named_prior_weight * named.get(sid, 0.0)) * prior
        for sid, prior in priors.items()
    }
    top = _diversify(base, aspects, limit)
    dense_rank = _rank_of([[sid for sid, _ in ranked] for ranked in dense_lists])
    lexical_rank = _rank_of([lexical])

    servers = {s.id: s for s in _with_summary(McpServer.objects.filter(id__in=[sid for sid, _ in top]))}
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


# --------------------------------------------------------------------------------------------------------------
# Single server and lists


def _with_summary(queryset: QuerySet[McpServer]) -> QuerySet[McpServer]:
    """Adds tools_count and the credential requirements (prefetched) that list and search results show. The
    search columns (a document of up to 12,000 characters and its tsvector) are not read: nothing shown uses them."""
    return queryset.defer("search_document", "search_vector").annotate(
        tools_count=Count("tools", distinct=True)
    ).prefetch_related(
        Prefetch("credentials", queryset=CredentialRequirement.objects.order_by("-required", "key"))
    )


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
