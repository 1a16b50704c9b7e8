"""The service lexicon (config/config.json): which words of a request name which service or capability."""

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class ServiceEntry:
    key: str
    name: str
    kind: str
    aliases: tuple[str, ...]
    match: tuple[str, ...]
    query: str
    pattern: re.Pattern


@dataclass(frozen=True)
class Lexicon:
    services: tuple[ServiceEntry, ...]
    by_key: dict
    llm_actions: dict
    analysis: dict


def config_path() -> Path:
    return Path(settings.BASE_DIR) / "config" / "config.json"


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    data = json.loads(config_path().read_text())
    entries = []
    for raw in data["services"]:
        aliases = tuple(sorted({a.lower() for a in raw["aliases"]}, key=len, reverse=True))
        # Word-bounded, longest alias first; "s?" lets "emails" match "email".
        pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(a) for a in aliases) + r")s?(?![\w-])")
        entries.append(
            ServiceEntry(
                key=raw["key"],
                name=raw["name"],
                kind=raw.get("kind", "service"),
                aliases=aliases,
                match=tuple(m.lower() for m in raw["match"]),
                query=raw["query"],
                pattern=pattern,
            )
        )
    return Lexicon(
        services=tuple(entries),
        by_key={e.key: e for e in entries},
        llm_actions=data.get("llm_only_actions", {}),
        analysis=data.get("analysis", {}),
    )


def find_service(name: str) -> ServiceEntry | None:
    """A service named in plain words ("Discord", "google sheets"), or None."""
    text = name.lower().strip()
    lex = lexicon()
    if text in lex.by_key:
        return lex.by_key[text]
    for entry in lex.services:
        if entry.pattern.search(text):
            return entry
    return None
