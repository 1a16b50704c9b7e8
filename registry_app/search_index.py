"""What search indexes for each server: the text we embed (`search_document`), its hash (to find stale embeddings)
and the weighted full-text vector (`search_vector`).

Weights: A = name, slug and repository owner/name (how people name a service); B = description and categories;
C = tool names and descriptions; D = credential services and keys. Ranking (selectors.server_search) relies on them.

Embeddings: one vector per server and model (ServerEmbedding, of `search_document`) and one per tool and model
(ToolEmbedding, of `build_tool_document`), each found stale by the hash of its text, each kind with a partial HNSW
index per model and a shipped cache (config/embeddings/<model>.npz and <model>.tools.npz).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from django.db import connection, transaction

from registry_app.embeddings import EmbeddingProvider
from registry_app.models import McpServer

logger = logging.getLogger(__name__)

# The text-search configuration of the index; the query side (selectors) must use the same one.
# 'english' (stemming: "messages" finds "message", "sending" finds "send") measured better than 'simple'
# on both benchmarks (benchmarks/bench_search_quality.py).
TS_CONFIG = "english"

# Bounds so that a pathological record (a 10 MB description, 500 tools) cannot exceed tsvector's 1 MB limit
# or make one document dominate; the embedding model reads only the first 256 tokens anyway.
MAX_DESCRIPTION_CHARS = 2000
MAX_TOOL_DESCRIPTION_CHARS = 300
MAX_TOOLS = 200
MAX_DOCUMENT_CHARS = 12000
CHUNK = 2000
TIDY_AFTER = 500  # rows written in one run (servers imported, vectors stored) that call for tidy_tables()

_generation = 0
SERVERS, TOOLS = "servers", "tools"  # kinds of vectors: one per server document, one per tool

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_\-./:@]+")
_SPACES = re.compile(r"\s+")


def humanise_identifier(value: str) -> str:
    """`send_message`, `sendMessage`, `send-message` -> `send message` (what people type)."""
    return _SPACES.sub(" ", _SEPARATORS.sub(" ", _CAMEL.sub(" ", value))).strip().lower()


def repository_words(repository_url: str) -> str:
    """Owner and repository name of a repository URL, as words (github.com/makenotion/notion-mcp-server)."""
    path = urlparse(repository_url).path if "://" in repository_url else repository_url
    parts = [p for p in path.split("/") if p][:2]
    return " ".join(humanise_identifier(p) for p in parts)


def _clean(text: str, limit: int) -> str:
    # NUL cannot be stored in PostgreSQL text; collapse whitespace so documents hash the same however spaced.
    return _SPACES.sub(" ", (text or "").replace("\x00", " ")).strip()[:limit]


def build_document(
    *, name: str, description: str, categories: Iterable[str], tools: Iterable[tuple[str, str]]
) -> str:
    """The text that represents a server for embedding. The model reads 256 tokens, so the most telling parts
    come first: name, description, then tool names (humanised). Tool descriptions are left to full-text search:
    with them in the embedded text, LiveMCPBench Recall@5 of the dense ranking fell from 0.69 to 0.62 (the names
    of many tools no longer fit in 256 tokens)."""
    lines = [_clean(name, 300)]
    desc = _clean(description, MAX_DESCRIPTION_CHARS)
    if desc:
        lines.append(desc)
    tool_names = list(dict.fromkeys(humanise_identifier(n) for n, _ in list(tools)[:MAX_TOOLS]))
    if tool_names:
        lines.append("Tools: " + ", ".join(tool_names))
    cats = [humanise_identifier(c) for c in categories if c]
    if cats:
        lines.append("Categories: " + ", ".join(cats))
    return "\n".join(lines)[:MAX_DOCUMENT_CHARS]


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def build_tool_document(*, tool_name: str, description: str) -> str:
    """The text that represents one tool for embedding: its humanised name, then its description. Short enough
    for the model to read whole, unlike a large server's document, whose tools past the 256th token are lost.
    Measured (bench_search_quality.py): prefixing the server's name, or appending its description, did worse."""
    name = humanise_identifier(_clean(tool_name, 300))
    desc = _clean(description, MAX_TOOL_DESCRIPTION_CHARS)
    return f"{name}: {desc}" if desc else name


_SELECT = """
SELECT s.id, s.name, s.slug, s.repository_url, left(s.description, %(desc)s), s.categories,
       coalesce(t.names, '{}'), coalesce(t.descriptions, '{}'), coalesce(c.words, '')
FROM registry_app_mcpserver s
LEFT JOIN LATERAL (
    SELECT array_agg(name ORDER BY name) AS names, array_agg(left(description, %(tdesc)s) ORDER BY name) AS descriptions
    FROM registry_app_servertool WHERE server_id = s.id
) t ON true
LEFT JOIN LATERAL (
    SELECT string_agg(concat_ws(' ', service, key), ' ') AS words
    FROM registry_app_credentialrequirement WHERE server_id = s.id
) c ON true
WHERE s.id = ANY(%(ids)s)
ORDER BY s.id
"""

_UPDATE = f"""
UPDATE registry_app_mcpserver s SET
    search_document = d.document,
    content_hash = d.hash,
    search_vector =
        setweight(to_tsvector('{TS_CONFIG}', d.names), 'A')
        || setweight(to_tsvector('{TS_CONFIG}', d.about), 'B')
        || setweight(to_tsvector('{TS_CONFIG}', d.tools), 'C')
        || setweight(to_tsvector('{TS_CONFIG}', d.credentials), 'D')
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
    AS d(id, document, hash, names, about, tools, credentials)
WHERE s.id = d.id
"""


def refresh_search_fields(*, server_ids: list[int] | None = None) -> int:
    """Recompute search_document, content_hash and search_vector for the given servers (all when None).

    One read and one set-based UPDATE per chunk of 2,000 servers. Returns the number of servers refreshed.
    Embeddings are not computed here: `embed_servers --stale` finds the servers whose content_hash changed.
    """
    if server_ids is None:
        ids = list(McpServer.objects.order_by("id").values_list("id", flat=True))
    else:
        ids = sorted(set(server_ids))
    done = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(ids), CHUNK):  # chunks bound the memory at 100,000 servers
            params = {"desc": MAX_DESCRIPTION_CHARS, "tdesc": MAX_TOOL_DESCRIPTION_CHARS, "ids": ids[start : start + CHUNK]}
            cursor.execute(_SELECT, params)
            rows = cursor.fetchall()
            columns: list[list] = [[] for _ in range(7)]
            for sid, name, slug, repo, description, categories, tool_names, tool_descs, cred_words in rows:
                tools = list(zip(tool_names, tool_descs))[:MAX_TOOLS]
                document = build_document(name=name, description=description, categories=categories, tools=tools)
                names = " ".join([name, humanise_identifier(slug), repository_words(repo)])
                about = " ".join([_clean(description, MAX_DESCRIPTION_CHARS), *map(humanise_identifier, categories)])
                tool_text = " ".join(f"{n} {humanise_identifier(n)} {_clean(d, MAX_TOOL_DESCRIPTION_CHARS)}" for n, d in tools)
                for column, value in zip(
                    columns,
                    (sid, document, document_hash(document), names, about, tool_text, humanise_identifier(cred_words)),
                ):
                    column.append(value.replace("\x00", " ") if isinstance(value, str) else value)
            cursor.execute(_UPDATE, columns)
            done += len(rows)
    catalogue_changed()
    return done


def catalogue_changed() -> None:
    """Tell this process's caches built from the catalogue (name index, vocabulary) to rebuild on next use."""
    global _generation
    _generation += 1


def generation() -> int:
    """Bumped by every refresh in this process, so in-process caches built from the index know they are stale."""
    return _generation


# --------------------------------------------------------------------------------------------------------------
# Embeddings: one row per server and model, a partial HNSW index per model, and a shipped cache of vectors


def vector_type(dims: int) -> str:
    """pgvector indexes `vector` up to 2,000 dimensions and `halfvec` up to 4,000."""
    return f"vector({dims})" if dims <= 2000 else f"halfvec({dims})"


def embedding_expression(dims: int, alias: str = "") -> str:
    """The indexed expression of one model's vectors. Queries must use the very same expression (and a
    `model = '...'` condition) for PostgreSQL to use that model's partial HNSW index."""
    column = f"{alias}.embedding" if alias else "embedding"
    return f"({column}::{vector_type(dims)})"


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


def embedding_index_name(model: str, kind: str = SERVERS) -> str:
    """Name of the partial HNSW index of one model's server (or tool) vectors (PostgreSQL names: at most 63 bytes)."""
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:28]
    prefix = "registry_emb_hnsw" if kind == SERVERS else "registry_toolemb_hnsw"
    return f"{prefix}_{slug}_{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def ensure_embedding_index(*, model: str, dims: int, kind: str = SERVERS) -> str:
    """Create (once) the partial HNSW index over this model's vectors (server vectors, or tool vectors with
    kind="tools"); returns its name. No migration is needed for a new provider: the column has no fixed dimension
    and each model gets its own index."""
    name = embedding_index_name(model, kind)
    table = "registry_app_serverembedding" if kind == SERVERS else "registry_app_toolembedding"
    ops = "vector_cosine_ops" if dims <= 2000 else "halfvec_cosine_ops"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [name])
        if cursor.fetchone():
            return name
        if connection.in_atomic_block:
            # Inside a transaction that just wrote embeddings, their deferred foreign-key checks must run before
            # PostgreSQL allows CREATE INDEX on the table.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # m=16, ef_construction=64 (pgvector defaults): bench_search_speed.py prints the recall this gives.
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw"
            f" ({embedding_expression(dims)} {ops}) WHERE model = %s",
            [model],
        )
    return name


def stale_server_ids(*, model: str, server_ids: list[int] | None = None) -> list[int]:
    """Servers with no embedding for `model`, or one computed from a different document."""
    sql = (
        "SELECT s.id FROM registry_app_mcpserver s"
        " LEFT JOIN registry_app_serverembedding e ON e.server_id = s.id AND e.model = %s"
        " WHERE (e.id IS NULL OR e.content_hash <> s.content_hash)"
    )
    params: list = [model]
    if server_ids is not None:
        sql += " AND s.id = ANY(%s)"
        params.append(list(server_ids))
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY s.id", params)
        return [row[0] for row in cursor.fetchall()]


# Per kind of vector: its table, the column naming what it embeds, and a join that skips tools deleted while their
# vectors were computed (imports replace tools often; a server deleted meanwhile stays an error).
_EMBEDDING_TABLES = {
    SERVERS: ("registry_app_serverembedding", "server_id", ""),
    TOOLS: ("registry_app_toolembedding", "tool_id", " JOIN registry_app_servertool t ON t.id = d.id"),
}


def _store_embeddings(*, kind: str, model: str, dims: int, ids: list[int], hashes: list[str],
                      vectors: np.ndarray) -> None:
    table, owner, join = _EMBEDDING_TABLES[kind]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({owner}, model, dims, embedding, content_hash, created_at)"
            " SELECT d.id, %s, %s, d.v::vector, d.h, now()"
            f" FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS d(id, v, h){join}"
            f" ON CONFLICT ({owner}, model) DO UPDATE SET"
            " dims = EXCLUDED.dims, embedding = EXCLUDED.embedding, content_hash = EXCLUDED.content_hash,"
            " created_at = EXCLUDED.created_at",
            [model, dims, ids, [vector_literal(v) for v in vectors], hashes],
        )


def cache_path(model: str, kind: str = SERVERS) -> Path:
    """config/embeddings/<model>.npz for server vectors, <model>.tools.npz for tool vectors."""
    from django.conf import settings

    suffix = ".npz" if kind == SERVERS else f".{kind}.npz"
    return Path(settings.EMBEDDING_CACHE_DIR) / (re.sub(r"[^A-Za-z0-9._-]+", "_", model) + suffix)


def cache_load(model: str, dims: int, kind: str = SERVERS) -> dict[str, np.ndarray]:
    """{content_hash: float32 vector} from the shipped cache of this model; empty if none or unreadable."""
    path = cache_path(model, kind)
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["model"]) != model or data["vectors"].shape[1] != dims:
                return {}
            if (str(data["kind"]) if "kind" in data.files else SERVERS) != kind:
                return {}
            hashes = [h.hex() for h in data["hashes"].tolist()]
            vectors = data["vectors"].astype(np.float32)
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable embedding cache %s: %s", path, exc)
        return {}
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.maximum(norms, 1e-12)  # float16 storage: renormalise
    return dict(zip(hashes, vectors))


def _cache_write(*, model: str, kind: str, rows: Iterable[tuple[str, str]]) -> tuple[Path, int]:
    unique = dict(rows)  # identical texts share one vector
    path = cache_path(model, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    hashes = np.array([bytes.fromhex(h) for h in unique], dtype="S32")
    vectors = np.array([v.strip("[]").split(",") for v in unique.values()], dtype=np.float32)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, model=np.array(model), kind=np.array(kind), hashes=hashes, vectors=vectors.astype(np.float16)
    )
    tmp.replace(path)
    return path, len(unique)


def cache_export(*, model: str) -> tuple[Path, int]:
    """Write every current embedding of `model` (those matching their server's document) to the cache file.
    float16 halves the size; cosine against the float32 vectors stays above 0.9999."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.content_hash, e.embedding::text FROM registry_app_serverembedding e"
            " JOIN registry_app_mcpserver s ON s.id = e.server_id AND s.content_hash = e.content_hash"
            " WHERE e.model = %s ORDER BY e.content_hash",
            [model],
        )
        rows = cursor.fetchall()
    return _cache_write(model=model, kind=SERVERS, rows=rows)


def tool_cache_export(*, model: str) -> tuple[Path, int]:
    """The same for tool vectors (<model>.tools.npz): every current one, keyed by the hash of the tool's text."""
    current = {tid: document_hash(document) for tid, document, _ in _tool_rows(model=model)}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tool_id, content_hash, embedding::text FROM registry_app_toolembedding WHERE model = %s"
            " ORDER BY content_hash",
            [model],
        )
        rows = [(digest, vector) for tid, digest, vector in cursor.fetchall() if current.get(tid) == digest]
    return _cache_write(model=model, kind=TOOLS, rows=rows)


@dataclass
class EmbedResult:
    model: str
    considered: int = 0
    from_cache: int = 0
    computed: int = 0
    index: str = ""
    tools_considered: int = 0
    tools_from_cache: int = 0
    tools_computed: int = 0
    tool_index: str = ""


_TOOL_ROWS = """
SELECT t.id, t.name, left(t.description, %s), e.content_hash
FROM registry_app_servertool t
LEFT JOIN registry_app_toolembedding e ON e.tool_id = t.id AND e.model = %s
{where}
ORDER BY t.id
"""


def _tool_rows(*, model: str, server_ids: list[int] | None = None) -> list[tuple[int, str, str | None]]:
    """(tool id, its document, the content_hash of its stored `model` vector or None) for the given servers' tools."""
    # Descriptions are read well past the document's 300 characters: those are counted after whitespace collapses.
    where, params = "", [8 * MAX_TOOL_DESCRIPTION_CHARS, model]
    if server_ids is not None:
        where, params = "WHERE t.server_id = ANY(%s)", [*params, list(server_ids)]
    with connection.cursor() as cursor:
        cursor.execute(_TOOL_ROWS.format(where=where), params)
        return [
            (tid, build_tool_document(tool_name=name, description=description or ""), stored)
            for tid, name, description, stored in cursor.fetchall()
        ]


def stale_tool_ids(*, model: str, server_ids: list[int] | None = None) -> list[int]:
    """Tools with no embedding for `model`, or one computed from a different text (the tool was edited since)."""
    return [tid for tid, document, stored in _tool_rows(model=model, server_ids=server_ids)
            if stored != document_hash(document)]


def tool_embeddings_refresh(
    *,
    provider: EmbeddingProvider,
    only_stale: bool = True,
    server_ids: list[int] | None = None,
    batch_size: int = 256,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    result: EmbedResult | None = None,
) -> EmbedResult:
    """(Re)compute the tool embeddings of `provider`: the stale ones (no vector, or the tool's text changed), or
    all, of the given servers (all when None). Vectors of texts in the shipped cache come from it, identical texts
    are embedded once, and each batch commits on its own. `progress(done, total)` after each batch. Ensures the
    model's HNSW index over tool vectors exists."""
    result = result or EmbedResult(model=provider.name)
    rows = [(tid, document, document_hash(document), stored)
            for tid, document, stored in _tool_rows(model=provider.name, server_ids=server_ids)]
    todo = [(tid, document, digest) for tid, document, digest, stored in rows if not only_stale or stored != digest]
    result.tools_considered += len(todo)
    cache = cache_load(provider.name, provider.dims, TOOLS) if use_cache and todo else {}
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        vectors: dict[str, np.ndarray] = {}
        for _, _, digest in chunk:
            if digest in cache:
                vectors[digest] = cache[digest]
        texts = {digest: document or " " for _, document, digest in chunk if digest not in vectors}
        if texts:
            vectors.update(zip(texts, provider.embed(list(texts.values()))))
        with transaction.atomic():
            _store_embeddings(
                kind=TOOLS, model=provider.name, dims=provider.dims, ids=[tid for tid, _, _ in chunk],
                hashes=[digest for _, _, digest in chunk], vectors=np.array([vectors[d] for _, _, d in chunk]),
            )
        computed = sum(1 for _, _, digest in chunk if digest in texts)
        result.tools_computed += computed
        result.tools_from_cache += len(chunk) - computed
        if progress:
            progress(len(chunk), len(todo))
    result.tool_index = ensure_embedding_index(model=provider.name, dims=provider.dims, kind=TOOLS)
    return result


def server_embeddings_refresh(
    *,
    provider: EmbeddingProvider,
    only_stale: bool = True,
    server_ids: list[int] | None = None,
    batch_size: int = 64,
    use_cache: bool = True,
    progress: Callable[[int], None] | None = None,
    tool_progress: Callable[[int, int], None] | None = None,
) -> EmbedResult:
    """(Re)compute server embeddings for `provider`: the stale ones, or all. Vectors whose document hash is in the
    shipped cache are taken from it. Ensures the model's HNSW index exists. Each batch commits on its own, so an
    interrupted run keeps its progress and `--stale` resumes it. Then the same for the tools of those servers
    (tool_embeddings_refresh; with only_stale, every stale tool of the catalogue or of `server_ids`)."""
    result = EmbedResult(model=provider.name)
    missing_docs = McpServer.objects.filter(content_hash="")
    if server_ids is not None:
        missing_docs = missing_docs.filter(id__in=server_ids)
    if ids_to_index := list(missing_docs.values_list("id", flat=True)):
        refresh_search_fields(server_ids=ids_to_index)
    if only_stale:
        ids = stale_server_ids(model=provider.name, server_ids=server_ids)
    else:
        queryset = McpServer.objects.order_by("id")
        ids = list((queryset.filter(id__in=server_ids) if server_ids is not None else queryset).values_list("id", flat=True))
    result.considered = len(ids)
    cache = cache_load(provider.name, provider.dims) if use_cache else {}
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        rows = list(McpServer.objects.filter(id__in=chunk).order_by("id").values_list("id", "search_document", "content_hash"))
        vectors = np.empty((len(rows), provider.dims), dtype=np.float32)
        to_compute = []
        for i, (_, document, digest) in enumerate(rows):
            cached = cache.get(digest)
            if cached is not None:
                vectors[i] = cached
            else:
                to_compute.append(i)
        if to_compute:
            vectors[to_compute] = provider.embed([rows[i][1] or " " for i in to_compute])
        with transaction.atomic():
            _store_embeddings(
                kind=SERVERS, model=provider.name, dims=provider.dims, ids=[r[0] for r in rows],
                hashes=[r[2] for r in rows], vectors=vectors,
            )
        result.from_cache += len(rows) - len(to_compute)
        result.computed += len(to_compute)
        if progress:
            progress(len(rows))
    result.index = ensure_embedding_index(model=provider.name, dims=provider.dims)
    tool_embeddings_refresh(
        provider=provider, only_stale=only_stale, server_ids=server_ids, use_cache=use_cache,
        progress=tool_progress, result=result,
    )
    if result.considered + result.tools_considered >= TIDY_AFTER:
        tidy_tables()
    return result


CATALOGUE_TABLES = (
    "registry_app_mcpserver", "registry_app_servertool", "registry_app_credentialrequirement",
    "registry_app_launchrecipe", "registry_app_serverembedding", "registry_app_toolembedding",
)
GIN_INDEXES = ("registry_server_fts", "registry_server_categories")


def tidy_tables() -> None:
    """After a bulk write (an import, a load, embedding hundreds of servers), do now what autovacuum does some
    minutes later, since searches in between pay for it (measured on the 6,000-server catalogue, just loaded):
    - PostgreSQL puts new full-text entries in the GIN index's pending list, which every full-text query scans in
      full until a vacuum folds it in: the lexical query took 5.5 ms instead of 0.6 ms;
    - the planner keeps the statistics of the empty tables: it did not use the HNSW indexes, and it read every
      tool, recipe and credential row for the quality prior (5 ms instead of 1.5 ms).
    Outside a transaction this is VACUUM (ANALYZE) of the catalogue tables; inside one (a caller's atomic block,
    a test), where VACUUM cannot run, it folds the pending list (gin_clean_pending_list) and runs ANALYZE."""
    tables = ", ".join(CATALOGUE_TABLES)
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute("SELECT gin_clean_pending_list(i::regclass) FROM unnest(%s::text[]) AS i", [list(GIN_INDEXES)])
            cursor.execute(f"ANALYZE {tables}")
        else:
            cursor.execute(f"VACUUM (ANALYZE) {tables}")
