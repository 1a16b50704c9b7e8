"""Which servers a word or phrase of the query names, and how name-like each word is in the catalogue."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from django.db import connection, connections

from registry_app import search_index
from registry_app.models import McpServer
from registry_app.search.query import GENERIC_NAME_WORDS, QUERY_STOPWORDS, TS_CONFIG, query_words

logger = logging.getLogger(__name__)


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


class CatalogueIndexHolder:
    """Built lazily per process (about 1 s for 6,000 servers); rebuilt at once after a search-index refresh in this
    process, and in the background every `ttl` seconds (edits made by other processes), serving the old one meanwhile."""

    ttl = 600.0

    def __init__(self, build):
        # build() -> an index with .generation and .built_at (registry_app.vocabulary keeps its own this way).
        self._build = build
        self._lock = threading.Lock()
        self._index: _NameIndex | None = None
        self._refreshing = False

    def get(self):
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


name_index = CatalogueIndexHolder(build=lambda: _build_name_index())
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
