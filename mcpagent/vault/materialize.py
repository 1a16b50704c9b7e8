"""Decrypted files on disk, only while a server runs: a private folder per use, removed on exit, and a sweep for
folders left by processes that died inside one."""

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mcpagent.errors import NotFound
from mcpagent.models import ApiClient
from mcpagent.vault.audit import ActorLike, audit_event
from mcpagent.vault.holders import audit_holders, check_owner, preferred, scope, uuid_or_none
from mcpagent.vault.models import AuditEvent, StoredFile

logger = logging.getLogger("mcpagent.vault")

_MATERIALIZE_PREFIX = "mcpagent-files-"


def _materialize_root() -> str:
    configured = settings.FILES_MATERIALIZE_DIR
    if configured:
        return configured
    # RAM-backed when available, so decrypted files never reach a disk.
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else tempfile.gettempdir()


def materialized_files_sweep() -> int:
    """Remove decrypted-file folders left behind by processes that died inside file_materialize (SIGKILL, a
    worker's hard time limit, a power cut leaves nothing in /dev/shm). A folder whose owner is alive is left
    alone. Returns how many were removed."""
    root = Path(_materialize_root())
    removed = 0
    for folder in root.glob(f"{_MATERIALIZE_PREFIX}*"):
        pid = folder.name[len(_MATERIALIZE_PREFIX):].split("-", 1)[0]
        if not folder.is_dir() or folder.is_symlink() or not pid.isdigit() or _process_alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += not folder.exists()
    if removed:
        logger.warning("removed %d decrypted-file folder(s) left behind by dead processes in %s", removed, root)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


@contextmanager
def file_materialize(
    *,
    client: ApiClient,
    session: Any = None,
    agent: Any = None,
    file_ids: list | None = None,
    actor: ActorLike,
    reason: str,
) -> Iterator[dict[str, Path]]:
    """Write the live files of a session/agent (optionally only `file_ids`) decrypted into a private folder
    (0700, files 0600) and yield {key (or file id when it has none): path}; everything is removed on exit,
    also on error. Hand a path to a server as the env var named by its key."""
    with transaction.atomic():
        check_owner(client=client, session=session, agent=agent)
        rows = scope(StoredFile, client=client, session=session, agent=agent)
        if file_ids is not None:
            rows = rows.filter(pk__in=[uuid_or_none(i) for i in file_ids])
        rows = preferred(rows, agent)
        if file_ids is not None and len(rows) != len(set(map(str, file_ids))):
            raise NotFound("File not found.")
        if rows:
            StoredFile.objects.filter(pk__in=[row.pk for row in rows]).update(last_used_at=timezone.now())
            holders = audit_holders(session=session, agent=agent)
            AuditEvent.objects.bulk_create([audit_event(row, AuditEvent.Action.READ_FOR_USE, actor, reason, **holders)
                                            for row in rows])
    with _private_folder() as folder:
        paths: dict[str, Path] = {}
        for row in rows:
            paths[row.key or str(row.pk)] = _write(folder / str(row.pk), row.filename, row.content)
        yield paths


@contextmanager
def generated_files_materialize(files: dict[str, tuple[str, bytes]]) -> Iterator[dict[str, Path]]:
    """Like file_materialize, for files made for this use ({key: (filename, content)}, e.g. a credentials file
    built from an OAuth connection): written into a private folder, removed when the block ends. The caller
    audits the read of what they were made from."""
    with _private_folder() as folder:
        yield {key: _write(folder / f"generated-{n}", filename, content)
               for n, (key, (filename, content)) in enumerate(sorted(files.items()))}


def _write(subdir: Path, filename: str, content: bytes) -> Path:
    subdir.mkdir(mode=0o700)
    path = subdir / filename
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    return path


@contextmanager
def _private_folder() -> Iterator[Path]:
    # The owner's pid is in the name, so that materialized_files_sweep can tell a folder whose process died
    # without cleaning up (a worker killed at its hard time limit) from one in use.
    folder = Path(tempfile.mkdtemp(prefix=f"{_MATERIALIZE_PREFIX}{os.getpid()}-", dir=_materialize_root()))
    try:
        os.chmod(folder, 0o700)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
