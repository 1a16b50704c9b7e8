"""The catalogue's vocabulary: every service or product the catalogue's servers are for, and where a text names one.

Built from the catalogue itself (each active server's name, slug, repository owner and name, reduced to their
identifying words: "Harvest MCP Server" -> "harvest", "apple-notes-mcp" -> "apple notes"), so a request naming any
of them ("log my hours in Harvest", "post to Mattermost") is understood without a hand-written word list.

Many server names are ordinary words ("notes", "time", "files", "web", "things"). A name counts as named in a text
only when it is distinctive:
- a rare word in English (wordfreq's Zipf frequency below RARE_ZIPF: "contentful", "mattermost") always;
- a moderately common word (below COMMON_ZIPF: "harvest", "notion") when the catalogue uses it as a name: most
  servers whose description says the word have it in their name (CATALOGUE_NAMENESS), and a fair share of those
  are named just that (EXACT_SHARE; "docs" is mostly part of longer names, "Python Docs");
- any other word, and any multi-word name made only of common words ("apple notes"), only when the text writes it
  capitalised after its first word ("add tasks to Things", "read my Apple Notes");
- never a word that says nothing about a service (registry_app.search's stop words and generic name words).
Multi-word names beat the single words inside them ("apple notes" over "notes").

wordfreq (a maintained corpus of English word frequencies) stands in for a generic-word list we would otherwise
have to write and keep by hand. The index is rebuilt when this process refreshes the search index (import, sync,
admin edit) and in the background every ten minutes for edits made by other processes, like the name index.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache

from django.db import connection
from wordfreq import zipf_frequency

from registry_app import search_index
from registry_app.models import McpServer
from registry_app.search.names import CatalogueIndexHolder, _repository_parts, core_name
from registry_app.search.query import GENERIC_NAME_WORDS, QUERY_STOPWORDS

RARE_ZIPF = 3.0  # below: hardly an English word (Zipf 3 = once per million words)
COMMON_ZIPF = 4.4  # at or above: an everyday word ("notes" 4.8, "weather" 4.9, "things" 5.7)
CATALOGUE_NAMENESS = 0.5  # servers naming the word / servers whose description says it
EXACT_SHARE = 0.3  # servers named exactly the word / servers with it anywhere in their name
MAX_NAME_WORDS = 4
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class CatalogueService:
    """A service or product that catalogue servers are for ("apple notes"), with the servers named for it."""

    words: tuple[str, ...]
    server_ids: frozenset[int]
    nameness: float  # one word: servers naming it / servers whose description says it (1.0 for longer names)
    exact_share: float  # one word: servers named just it / servers with it anywhere in their name

    @property
    def key(self) -> str:
        return "-".join(self.words)

    @property
    def phrase(self) -> str:
        return " ".join(self.words)

    @property
    def distinctive_lowercase(self) -> bool:
        """Counts as named even when written in lower case."""
        return _distinctive(self.words, self.nameness, self.exact_share)


@dataclass(frozen=True)
class Mention:
    service: CatalogueService
    start: int  # character span in the text
    end: int
    written: str  # the words as the text writes them ("Apple Notes")

    @property
    def name(self) -> str:
        return self.written if any(c.isupper() for c in self.written) else self.written.title()


@dataclass
class Vocabulary:
    services: dict[str, CatalogueService]  # words joined without spaces -> service
    generation: int
    built_at: float

    def mentions(self, text: str) -> list[Mention]:
        """The catalogue services the text names, in order, longest names first, no two overlapping."""
        tokens = list(_TOKEN.finditer(text))
        taken = [False] * len(tokens)
        found: list[tuple[int, Mention]] = []
        for n in range(MAX_NAME_WORDS, 0, -1):
            for first in range(len(tokens) - n + 1):
                if any(taken[first : first + n]):
                    continue
                span = tokens[first : first + n]
                service = self.services.get("".join(t.group(0).lower() for t in span))
                if service is None or not _named(service, span, first):
                    continue
                if n > 1 and len(service.words) == 1 and any(_filler(t.group(0).lower()) for t in span):
                    # "googledrive" may be written "google drive", but "webfor" is not "web for".
                    continue
                taken[first : first + n] = [True] * n
                start, end = span[0].start(), span[-1].end()
                found.append((first, Mention(service=service, start=start, end=end, written=text[start:end])))
        return [mention for _, mention in sorted(found, key=lambda item: item[0])]


def _filler(word: str) -> bool:
    return word in QUERY_STOPWORDS or word in GENERIC_NAME_WORDS


def _named(service: CatalogueService, span: list[re.Match], first: int) -> bool:
    if service.nameness < CATALOGUE_NAMENESS:
        return False  # the catalogue mostly uses the word as an ordinary word ("markdown", "notify")
    if service.distinctive_lowercase:
        return True
    # Capitalised where grammar does not capitalise (not the text's first word): a proper name.
    return first > 0 and any(t.group(0)[:1].isupper() for t in span)


@lru_cache(maxsize=50_000)
def _distinctive(words: tuple[str, ...], nameness: float, exact_share: float) -> bool:
    if any(_filler(w) for w in words):
        return False  # "things", "help": only as a capitalised name
    if len(words) > 1:
        return min(zipf_frequency(w, "en") for w in words) < COMMON_ZIPF
    zipf = zipf_frequency(words[0], "en")
    if zipf < RARE_ZIPF:
        return True
    return zipf < COMMON_ZIPF and exact_share >= EXACT_SHARE


def _usable(words: tuple[str, ...]) -> bool:
    if not words or len(words) > MAX_NAME_WORDS:
        return False
    if all(w in GENERIC_NAME_WORDS or w.isdigit() for w in words):
        return False
    return len(words) > 1 or (len(words[0]) >= 3 and words[0] not in GENERIC_NAME_WORDS)


def build_vocabulary() -> Vocabulary:
    generation = search_index.generation()
    by_words: dict[tuple[str, ...], set[int]] = {}
    name_df: dict[str, int] = {}
    rows = McpServer.objects.filter(status=McpServer.Status.ACTIVE).values_list("id", "name", "slug", "repository_url")
    for sid, name, slug, repo in rows.iterator(chunk_size=5000):
        owner, repo_name = _repository_parts(repo or "")
        keys = {core_name(name), core_name(slug), core_name(repo_name), core_name(owner)}
        words_in_name: set[str] = set()
        for key in keys:
            if _usable(key):
                by_words.setdefault(key, set()).add(sid)
                words_in_name.update(key)
        for word in words_in_name:
            name_df[word] = name_df.get(word, 0) + 1
    # How often descriptions use each word, unstemmed ("contentful" is not "content").
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT word, ndoc FROM ts_stat($$SELECT to_tsvector('simple', coalesce(description, ''))"
            " FROM registry_app_mcpserver WHERE status = 'active'$$)"
        )
        desc_df = dict(cursor.fetchall())
    services: dict[str, CatalogueService] = {}
    for words, ids in by_words.items():
        joined = "".join(words)
        previous = services.get(joined)
        if previous is not None:  # "google drive" and "googledrive" are one service
            ids = ids | previous.server_ids
            words = previous.words if len(previous.words) >= len(words) else words
        nameness, exact_share = 1.0, 1.0
        if len(words) == 1:
            named = name_df.get(words[0], 0)
            nameness = named / max(desc_df.get(words[0], 0), named, 1)
            exact_share = len(ids) / max(named, 1)
        services[joined] = CatalogueService(words=words, server_ids=frozenset(ids), nameness=nameness,
                                            exact_share=exact_share)
    return Vocabulary(services=services, generation=generation, built_at=time.monotonic())


vocabulary = CatalogueIndexHolder(build=build_vocabulary)


def catalogue_mentions(text: str) -> list[Mention]:
    """The catalogue services a text names (see the module docstring for what counts as named)."""
    return vocabulary.get().mentions(text)
