"""A tiny MCP server (stdio) that reads the file named by its DIGEST_FILE env var, as servers that take a
credential file's path do (e.g. a Google OAuth client JSON): refuses to start without a readable file; its
tool reports the file's sha256 and where it lives (the private folder's name and modes, never its content)."""

import hashlib
import json
import os
import stat
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

path = Path(os.environ.get("DIGEST_FILE", ""))
if not os.environ.get("DIGEST_FILE") or not path.is_file():
    print(f"Error: DIGEST_FILE is not set to a readable file ({os.environ.get('DIGEST_FILE')!r})", file=sys.stderr)
    sys.exit(1)

server = MCPServer("file-digest")


def describe() -> dict:
    data = path.read_bytes()
    folder = path.parent.parent  # <materialize root>/mcpagent-files-*/<file id>/<name>
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "folder": folder.name,
            "folder_mode": oct(stat.S_IMODE(folder.stat().st_mode)),
            "file_mode": oct(stat.S_IMODE(path.stat().st_mode))}


@server.tool()
def file_digest() -> str:
    """The sha256 of the file in DIGEST_FILE."""
    return json.dumps(describe())


@server.tool()
def digest_then_wait() -> str:
    """Write the digest to DIGEST_MARKER_DIR, then never return (for run timeouts)."""
    marker = Path(os.environ["DIGEST_MARKER_DIR"]) / "seen.json"
    marker.write_text(json.dumps(describe()))
    while True:
        time.sleep(1)


server.run()
