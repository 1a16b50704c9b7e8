"""Our own catalogue format (config/servers.json): already merged servers, one entry each.

    {"format": "mcpagent-catalogue", "version": 1, "generated_at": "...", "sources": [...licences...],
     "servers": [{"slug", "name", "description", "repository_url", "repository_subfolder", "homepage",
                  "categories", "license", "status", "official", "popularity",
                  "launch": [{"kind", "identifier", "version", "transport", "url", "command", "args", "env",
                              "headers", "proxy_env"}],
                  "tools": [{"name", "description", "input_schema"}],
                  "credentials": [{"key", "location", "kind", "description", "required", "secret", "format",
                                   "default", "choices", "example", "service", "instructions", "pattern"}],
                  "signals": {...}, "keys": [identity keys beyond the entry's own repository, packages and
                  endpoints], "sources": [[source, source_id, location], ...]}]}

Empty values are left out when writing (the file ships in the repository; smaller is better). The slug is
authoritative: loading the same file on every machine gives every server the same slug. Per-service
credential help lives beside it in config/credinfo.json and is applied at import (services.py).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import (
    MAX_DESCRIPTION,
    MAX_NAME,
    CredentialRecord,
    ImportBatch,
    LaunchRecord,
    Problem,
    RecordError,
    ServerRecord,
    SourceError,
    SourceRef,
    long_text,
    make_slug,
    normalise_http_url,
    optional_bool,
    read_json,
    text,
    tools_from,
)
from .merge import popularity

FORMAT = "mcpagent-catalogue"
VERSION = 1
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with path.open("rb") as file:
        return f'"{FORMAT}"' in file.read(512).decode("utf-8", "ignore")


def read(path: Path) -> ImportBatch:
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SourceError(f"{path}: not a {FORMAT} file (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise SourceError(f"{path}: {FORMAT} version {data.get('version')!r} is not supported (expected {VERSION})")
    entries = data.get("servers")
    if not isinstance(entries, list):
        raise SourceError(f"{path}: 'servers' must be a list")
    batch = ImportBatch(source="native", path=str(path))
    for index, entry in enumerate(entries):
        location = f"{path.name}#servers[{index}]"
        warnings: list[str] = []
        try:
            record = record_from_entry(entry, location, warnings)
        except RecordError as exc:
            batch.problems.append(Problem(location, str(exc)))
            continue
        batch.add_first(record, location, warnings, id_name="slug")
    return batch


def _strings(value: Any, limit: int) -> list[str]:
    return [text(v, limit) for v in value if text(v, limit)] if isinstance(value, list) else []


def _string_map(value: Any) -> dict[str, str]:
    return {text(k, 200): text(v, 2000) for k, v in value.items() if text(k, 200)} if isinstance(value, dict) else {}


def record_from_entry(entry: Any, location: str, warnings: list[str]) -> ServerRecord:
    if not isinstance(entry, dict):
        raise RecordError("not an object")
    name = text(entry.get("name"), MAX_NAME)
    if not name:
        raise RecordError("no name")
    slug = make_slug(text(entry.get("slug"), 400)) or make_slug(name)
    if not slug:
        raise RecordError(f"no usable slug for {name!r}")
    launch = []
    for item in entry.get("launch") or []:
        if isinstance(item, dict) and text(item.get("kind"), 20):
            launch.append(LaunchRecord(
                kind=text(item.get("kind"), 20), identifier=text(item.get("identifier"), 400),
                version=text(item.get("version"), 100), transport=text(item.get("transport"), 20) or "stdio",
                url=text(item.get("url"), 1000), command=text(item.get("command"), 100),
                args=_strings(item.get("args"), 1000), env=_string_map(item.get("env")),
                headers=_string_map(item.get("headers")), source=text(item.get("source"), 40),
                proxy_env=[n for n in _strings(item.get("proxy_env"), 100) if _ENV_NAME.fullmatch(n)],
            ))
    credentials = []
    for item in entry.get("credentials") or []:
        if isinstance(item, dict) and text(item.get("key"), 200):
            credentials.append(CredentialRecord(
                key=text(item.get("key"), 200), location=text(item.get("location"), 10) or "env",
                description=text(item.get("description"), 4000), required=optional_bool(item.get("required")),
                secret=optional_bool(item.get("secret")), format=text(item.get("format"), 50),
                default=text(item.get("default"), 500), choices=_strings(item.get("choices"), 300),
                example=text(item.get("example"), 300), kind=text(item.get("kind"), 20),
                service=text(item.get("service"), 100), instructions=_strings(item.get("instructions"), 2000),
                pattern=text(item.get("pattern"), 300), source=text(item.get("source"), 40),
            ))
    tools = tools_from(entry.get("tools"), where=location, warnings=warnings)
    tool_sources = {text(t.get("name"), MAX_NAME): text(t.get("source"), 40)
                    for t in entry.get("tools") or [] if isinstance(t, dict)}
    for tool in tools:
        tool.source = tool_sources.get(tool.name, "")
    provenance = [SourceRef(text(s[0], 40), text(s[1], 400), text(s[2] if len(s) > 2 else "", 500))
                  for s in entry.get("sources") or [] if isinstance(s, list) and len(s) >= 2]
    return ServerRecord(
        source="native",
        source_id=slug,
        location=location,
        name=name,
        slug=slug,
        description=long_text(entry.get("description"), limit=MAX_DESCRIPTION, what="description",
                              warnings=warnings),
        repository_url=text(entry.get("repository_url"), 500),
        repository_subfolder=text(entry.get("repository_subfolder"), 200),
        homepage=normalise_http_url(entry.get("homepage")),
        categories=_strings(entry.get("categories"), 100),
        license=text(entry.get("license"), 100),
        status=text(entry.get("status"), 20) if entry.get("status") in ("active", "deprecated", "hidden") else "active",
        official=entry.get("official") is True,
        launch=launch,
        tools=tools,
        credentials=credentials,
        signals=entry.get("signals") if isinstance(entry.get("signals"), dict) else {},
        extra_keys=_strings(entry.get("keys"), 600),
        provenance=provenance,
    )


def _compact(value: Any) -> Any:
    """Drop empty strings, lists, dicts and None (defaults on reading); False is kept only where it says
    something (credential flags)."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v not in ("", None, [], {})}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


# Signals the entry's `sources` already say (see merge.sources_of): not repeated in the file.
_DERIVED_SIGNALS = {"official_registry", "docker", "toolsdk", "awesome"}


def entry_from_record(record: ServerRecord) -> dict[str, Any]:
    data = record.to_dict()
    own_keys = set(ServerRecord.from_dict({**data, "extra_keys": []}).merge_keys())
    entry: dict[str, Any] = {
        "slug": record.slug,
        "name": record.name,
        "description": record.description,
        "repository_url": record.repository_url,
        "repository_subfolder": record.repository_subfolder,
        "homepage": record.homepage,
        "categories": record.categories,
        "license": record.license,
        "status": "" if record.status == "active" else record.status,
        "official": record.official or None,
        "popularity": popularity(record),
        "launch": [_compact(x) for x in data["launch"]],
        "tools": [_compact(x) for x in data["tools"]],
        "credentials": [_compact(x) for x in data["credentials"]],
        "signals": {k: v for k, v in record.signals.items() if v and k not in _DERIVED_SIGNALS},
        "keys": [k for k in record.extra_keys if k not in own_keys],
        "sources": [[p.source, p.source_id, p.location] for p in record.provenance],
    }
    return _compact(entry)


def write(path: Path, records: list[ServerRecord], *, sources: list[dict[str, str]]) -> int:
    """Write the catalogue (one server per line inside the list, so diffs between builds stay readable)."""
    header = {"format": FORMAT, "version": VERSION, "generated_at": datetime.now(UTC).replace(microsecond=0)
              .isoformat(), "notice": "See CATALOGUE_NOTICE.md for the sources and their licences.",
              "sources": sources, "count": len(records)}
    lines = [json.dumps(entry_from_record(r), ensure_ascii=False, separators=(",", ":")) for r in records]
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":"))[:-1]
    path.write_text(head + ',"servers":[\n' + ",\n".join(lines) + "\n]}\n", encoding="utf-8")
    return len(records)
