"""Catalogue importers: one module per source format, each turning its input into normalised ServerRecords.

    read_catalogue(path, fmt="auto") -> ImportBatch

Formats: official (registry server.json dump), toolsdk (registry folder), docker (MCP catalog folder),
awesome (awesome-mcp-servers README), native (our config/servers.json). `auto` picks by content.
"""

from __future__ import annotations

from pathlib import Path

from . import awesome, docker, native, official, toolsdk
from .common import ImportBatch, SourceError

FORMATS = {"native": native, "official": official, "toolsdk": toolsdk, "docker": docker, "awesome": awesome}


def detect_format(path: Path) -> str:
    """The format of `path` (file or folder), or SourceError naming what was expected."""
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    for name, module in FORMATS.items():
        if module.detect(path):
            return name
    raise SourceError(
        f"cannot tell the format of {path}: expected the official registry's JSON dump, a toolsdk registry "
        "folder (packages/ + indexes/), a Docker MCP catalog folder (servers/*/server.yaml), an "
        "awesome-mcp-servers README.md, or an mcpagent-catalogue JSON file; pass --format to say which"
    )


def read_catalogue(path: Path, fmt: str = "auto") -> ImportBatch:
    path = Path(path)
    if fmt == "auto":
        fmt = detect_format(path)
    module = FORMATS.get(fmt)
    if module is None:
        raise SourceError(f"unknown format {fmt!r}; choose one of: auto, {', '.join(FORMATS)}")
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    return module.read(path)


__all__ = ["FORMATS", "ImportBatch", "SourceError", "detect_format", "read_catalogue"]
