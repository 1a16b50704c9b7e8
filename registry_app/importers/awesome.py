"""The awesome-mcp-servers list (punkpeye): Markdown bullets under category headings.

    ### 💬 <a name="communication"></a>Communication
    - [owner/repo](https://github.com/owner/repo) 🎖️ 📇 ☁️ - What it does.

Only the "Server Implementations" section is read. The emoji flags before the dash are the legend's
(🎖️ official, languages, scopes, OSes). The same link listed under two categories is one server with both.
"""

from __future__ import annotations

import re
from pathlib import Path

from .common import (
    MAX_DESCRIPTION,
    MAX_NAME,
    ImportBatch,
    Problem,
    RecordError,
    ServerRecord,
    SourceError,
    finish,
    long_text,
    make_slug,
    normalise_category,
    normalise_http_url,
    normalise_repository_url,
    text,
)

_SECTION = re.compile(r"^##\s+(.*)$")
_CATEGORY = re.compile(r"^###\s+(.*)$")
_ANCHOR = re.compile(r'<a\s+name="([^"]+)"\s*>\s*</a>\s*(.*)$', re.I)
_ENTRY = re.compile(r"^\s*[-*]\s+\[(?P<text>[^\]]+)\]\((?P<url>[^)\s]+)\)(?P<rest>.*)$")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_DASH = re.compile(r"^[-–—:]\s*")
_OFFICIAL_FLAG = "🎖"
_FLAG_NAMES = {"🐍": "python", "📇": "typescript", "🏎": "go", "🦀": "rust", "#️⃣": "csharp", "☕": "java",
               "🌊": "c-cpp", "💎": "ruby", "☁": "cloud", "🏠": "local", "📟": "embedded", "🍎": "macos",
               "🪟": "windows", "🐧": "linux"}
MAX_MARKDOWN_BYTES = 20 * 1024 * 1024


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() not in (".md", ".markdown"):
        return False
    return "Server Implementations" in path.read_text(encoding="utf-8", errors="ignore")


def _split_flags(rest: str) -> tuple[list[str], str]:
    """' 🎖️ 📇 ☁️ - Does things' -> (['🎖️', '📇', '☁️'], 'Does things')."""
    rest = rest.strip()
    flags: list[str] = []
    while rest:
        token, _, remainder = rest.partition(" ")
        if token and not any(ch.isalnum() for ch in token.replace("#️⃣", "")) and not _DASH.match(token):
            flags.append(token)
            rest = remainder.strip()
            continue
        if _DASH.match(rest):
            rest = _DASH.sub("", rest, count=1)
        elif token and token[0] in "-–—" and len(token) > 1:  # "🐧- real-time access"
            rest = rest[1:].strip()
        break
    return flags, rest.strip()


def read(path: Path) -> ImportBatch:
    try:
        if path.stat().st_size > MAX_MARKDOWN_BYTES:
            raise SourceError(f"{path}: larger than {MAX_MARKDOWN_BYTES:,} bytes")
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    batch = ImportBatch(source="awesome", path=str(path))
    in_servers = False
    category = ""
    by_id: dict[str, ServerRecord] = {}
    found_section = False
    for number, line in enumerate(lines, start=1):
        location = f"{path.name}:{number}"
        section = _SECTION.match(line)
        if section:
            in_servers = "server implementations" in section.group(1).lower()
            found_section |= in_servers
            category = ""
            continue
        if not in_servers:
            continue
        heading = _CATEGORY.match(line)
        if heading:
            anchor = _ANCHOR.search(heading.group(1))
            category = anchor.group(1) if anchor else re.sub(r"^\W+", "", heading.group(1))
            continue
        if not re.match(r"^\s*[-*]\s+\[", line) or not category:
            continue
        entry = _ENTRY.match(line)
        if not entry:
            batch.problems.append(Problem(location, "bullet is not '[name](url) flags - description'"))
            continue
        warnings: list[str] = []
        try:
            record = _record(entry, category, location, warnings)
        except RecordError as exc:
            batch.problems.append(Problem(location, str(exc)))
            continue
        first = by_id.get(record.source_id)
        if first is not None:
            more = [normalise_category(c) for c in record.categories]
            first.categories = list(dict.fromkeys([*first.categories, *(c for c in more if c)]))
            first.official |= record.official
            batch.problems.append(Problem(location, f"listed again (first at {first.location}); categories merged"))
            continue
        by_id[record.source_id] = finish(record, warnings, batch.problems)
    if not found_section:
        raise SourceError(f"{path}: no '## Server Implementations' section; not an awesome-mcp-servers list")
    batch.records = list(by_id.values())
    return batch


def _record(entry: re.Match, category: str, location: str, warnings: list[str]) -> ServerRecord:
    label = text(entry.group("text"), MAX_NAME)
    url = text(entry.group("url"), 2000)
    flags, description = _split_flags(entry.group("rest"))
    description = _LINK.sub(r"\1", description)
    repo_url, subfolder = normalise_repository_url(url)
    homepage = "" if repo_url else normalise_http_url(url)
    if not repo_url and not homepage:
        raise RecordError(f"link {url[:100]!r} is not an http(s) URL")
    source_id = f"{repo_url}#{subfolder}" if subfolder else (repo_url or homepage)
    owner, _, repo = label.partition("/")
    return ServerRecord(
        source="awesome",
        source_id=source_id,
        location=location,
        name=repo.strip() if repo and " " not in label else label,
        slug=make_slug(label),
        description=long_text(description, limit=MAX_DESCRIPTION, what="description", warnings=warnings),
        repository_url=repo_url,
        repository_subfolder=subfolder,
        homepage=homepage,
        categories=[category],
        official=any(_OFFICIAL_FLAG in f for f in flags),
        signals={"awesome": True, "flags": sorted({n for f in flags for e, n in _FLAG_NAMES.items() if e in f})},
    )
