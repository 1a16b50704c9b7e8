"""Where ../shared (public catalogue snapshots and benchmarks, beside the project) is, for the tests that read it.

MCPAGENT_SHARED_DIR if set; else `shared` beside this checkout; else, for a clone made elsewhere (CI clones into
a temporary folder), `shared` beside the repository it was cloned from."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _find() -> Path:
    if os.environ.get("MCPAGENT_SHARED_DIR"):
        return Path(os.environ["MCPAGENT_SHARED_DIR"])
    beside = ROOT.parent / "shared"
    if beside.is_dir():
        return beside
    try:
        origin = subprocess.run(["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
                                capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and "://" not in origin and ":" not in origin.split("/")[0]:  # a local path, not a URL or host:path
        candidate = Path(origin).expanduser().resolve().parent / "shared"
        if candidate.is_dir():
            return candidate
    return beside


SHARED = _find()
