"""Secrets generated on first use and kept in a file only this user can read (the development encryption key,
the embedded database's password)."""

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_create_secret_file(path: Path, generate: Callable[[], str]) -> str:
    """The secret stored in `path`; a missing file is first written with `generate()`, mode 0600."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, generate().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() fails if another process created the file first: both then use the same secret.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return path.read_text().strip()
