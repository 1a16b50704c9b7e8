"""Where a catalogue server's data came from, as names and links staff can follow.

A server's ServerSource rows say which import wrote it. The bundled catalogue is imported as source `native`
(`servers.json#servers[3421]`), which says nothing about the upstream: its record carries the upstream
references it was built from (`provenance`: source, id there, file and line). Those are shown instead, each with
a link to the upstream file (at the repository's default branch) or registry entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

SOURCE_TITLES = {
    "official": "Official MCP Registry",
    "registry-api": "MCP Registry API",
    "toolsdk": "toolsdk MCP Registry",
    "docker": "Docker MCP Catalog",
    "awesome": "awesome-mcp-servers",
    "native": "bundled catalogue",
    "staff": "added by staff",
}
_GITHUB_FILES = {
    "toolsdk": "https://github.com/toolsdk-ai/toolsdk-mcp-registry/blob/HEAD/",
    "docker": "https://github.com/docker/mcp-registry/blob/HEAD/",
    "awesome": "https://github.com/punkpeye/awesome-mcp-servers/blob/HEAD/",
}
REGISTRY_SEARCH = "https://registry.modelcontextprotocol.io/v0/servers?"
_FILE_LINE = re.compile(r"^(?P<path>[^#:]+?)(?::(?P<line>\d+))?$")


@dataclass
class UpstreamRef:
    source: str
    title: str
    source_id: str
    location: str
    url: str  # "" when there is nothing to link to
    project_url: str = ""  # the server's own repository, when the source id is one


def _link(source: str, source_id: str, location: str) -> str:
    if source in ("official", "registry-api") and source_id:
        return REGISTRY_SEARCH + urlencode({"search": source_id})
    base = _GITHUB_FILES.get(source)
    match = _FILE_LINE.match(location or "")
    if base and match and not match["path"].startswith(("/", ".")):
        url = base + quote(match["path"])
        return url + (f"#L{match['line']}" if match["line"] else "")
    return ""


def upstream_refs(rows: list[tuple[str, str, str, dict]]) -> list[UpstreamRef]:
    """`rows`: (source, source_id, location, data) of a server's ServerSource rows. A `native` row is replaced by
    the upstream references in its record; duplicates are shown once."""
    refs: list[UpstreamRef] = []
    seen = set()
    for source, source_id, location, data in rows:
        upstream = (data or {}).get("provenance") if source == "native" else None
        triples = [(p.get("source", ""), p.get("source_id", ""), p.get("location", ""))
                   for p in upstream or [] if isinstance(p, dict)] or [(source, source_id, location)]
        for src, sid, loc in triples:
            if (src, sid) in seen:
                continue
            seen.add((src, sid))
            project = sid if src == "awesome" and sid.startswith("https://") else ""
            refs.append(UpstreamRef(source=src, title=SOURCE_TITLES.get(src, src), source_id=sid, location=loc,
                                    url=_link(src, sid, loc), project_url=project.split("#", 1)[0]))
    return refs
