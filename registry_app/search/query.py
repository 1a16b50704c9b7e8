"""Parsing a search request: validation, words, clauses of a multi-step request, needs it implies."""

from __future__ import annotations

import re

from django.conf import settings

from mcpagent.errors import ApplicationError
from registry_app import search_index

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
