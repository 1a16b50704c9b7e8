"""Credential and config files in the vault: check and store, list, pick for use, delete.

The checks on the bytes are mcpagent.vault.filecheck; what a server expects of a file comes in as `rules`, and
which server and key a session file may name is the caller's `file_target` (it knows the session's plan).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mcpagent.crypto import fingerprint
from mcpagent.errors import ApplicationError, NotFound
from mcpagent.models import ApiClient
from mcpagent.vault import filecheck, formats
from mcpagent.vault.audit import ActorLike, audit_event
from mcpagent.vault.holders import (
    agent_expiry, audit_holders, check_owner, end_user_of, hold, live, lock_entries, lock_owner, preferred, scope,
    session_expiry, uuid_or_none,
)
from mcpagent.vault.models import AuditEvent, StoredFile, VaultReference
from mcpagent.vault.rules import NO_RULES, CredentialRules
from mcpagent.vault.store import SERVER_RE

logger = logging.getLogger("mcpagent.vault")

# (server, key) -> the server slug the file is for ("" for none), or raises filecheck.FileRejected.
FileTarget = Callable[[str, str], str]


@dataclass
class FilesStoreResult:
    """Outcome of files_store: metadata of the stored files (file_metadata), or per-file errors (nothing stored)."""

    files: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if not self.errors:
            return
        statuses = {error["status"] for error in self.errors}
        single = len(self.errors) == 1
        raise ApplicationError(
            self.errors[0]["message"] + " Nothing was stored." if single
            else f"{len(self.errors)} file(s) were rejected; nothing was stored.",
            code=self.errors[0]["code"] if single else "invalid_files",
            status=statuses.pop() if len(statuses) == 1 else 400,
            details={"files": [{k: v for k, v in e.items() if k != "status"} for e in self.errors]},
        )


def file_metadata(stored: StoredFile) -> dict:
    """API view of a stored file: never its content."""
    return {
        "id": str(stored.pk), "filename": stored.filename, "type": stored.file_type, "server": stored.server,
        "key": stored.key, "content_type": stored.content_type, "detected": stored.detected, "size": stored.size,
        "fingerprint": stored.fingerprint, "expires_at": stored.expires_at, "created_at": stored.created_at,
    }


def _file_bytes(item: dict) -> bytes:
    if "data" in item:
        data = item["data"]
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise filecheck.FileRejected("invalid_file", "File data must be bytes.")
        return bytes(data)
    return filecheck.decode_base64(item.get("content", item.get("content_b64")))


def _session_quota_error(session: Any, checked: list) -> dict | None:
    """FILES_MAX_PER_SESSION / FILES_MAX_BYTES_PER_SESSION over the session's live files after this store (a keyed
    file replaces the earlier one for its server and key, which then no longer counts)."""
    held = VaultReference.objects.filter(session_id=session.pk, stored_file__isnull=False).values("stored_file")
    stored = StoredFile.objects.filter(pk__in=held).filter(live())
    replaced = Q(pk__in=[])
    for meta, _data, _info in checked:
        if meta["key"]:
            replaced |= Q(server=meta["server"], key=meta["key"])
    kept = stored.exclude(replaced)
    count = kept.count() + len(checked)
    size = sum(kept.values_list("size", flat=True)) + sum(len(data) for _meta, data, _info in checked)
    for total, limit, setting, what in (
        (count, settings.FILES_MAX_PER_SESSION, "FILES_MAX_PER_SESSION", "files"),
        (size, settings.FILES_MAX_BYTES_PER_SESSION, "FILES_MAX_BYTES_PER_SESSION", "bytes"),
    ):
        if limit > 0 and total > limit:
            return {"index": None, "code": "session_file_quota_exceeded", "status": 400,
                    "message": f"The session would hold {total} {what} of files, more than the {limit} allowed "
                               f"({setting}); a file sent again with the same server and key replaces the earlier one.",
                    "details": {"setting": setting, "limit": limit, "total": total}}
    return None


def _check_item(item: Any, *, session: Any, agent: Any, rules: CredentialRules,
                file_target: FileTarget | None) -> tuple[dict, bytes, filecheck.CheckedFile]:
    if not isinstance(item, dict):
        raise filecheck.FileRejected("invalid_file", "Each file must be an object.")
    file_type = item.get("type") or StoredFile.FileType.CREDENTIAL
    if file_type not in StoredFile.FileType.values:
        raise filecheck.FileRejected("invalid_file_type", "type must be one of: credential, config, other.")
    key, server = str(item.get("key") or ""), str(item.get("server") or "")
    if key and not formats.is_safe_key(key):
        raise filecheck.FileRejected("invalid_key", "key must be a credential name (letters, digits, _ . -).")
    if server and not SERVER_RE.match(server):
        raise filecheck.FileRejected("invalid_server", "server is not a valid server name.")
    if session is not None and agent is None and (server or key) and file_target is not None:
        server = file_target(server, key)
    data = _file_bytes(item)
    info = filecheck.check_file(filename=item.get("filename"), data=data)
    if server and key and (problems := rules.file_problems(server, key, data)):
        raise filecheck.FileRejected(
            "invalid_credential_file", f"The file does not fit {key}: {'; '.join(problems)}.", 400,
            {"problems": problems},
        )
    return {"type": file_type, "key": key, "server": server}, data, info


@transaction.atomic
def files_store(
    *,
    client: ApiClient,
    session: Any = None,
    agent: Any = None,
    files: list[dict],
    actor: ActorLike,
    reason: str,
    rules: CredentialRules = NO_RULES,
    file_target: FileTarget | None = None,
) -> FilesStoreResult:
    """Check and store files (each {filename, content: base64 str | data: bytes, type?, key?, server?}): all or
    none. Limits: FILE_MAX_BYTES each, FILES_MAX_REQUEST_BYTES and FILES_MAX_PER_REQUEST per call,
    FILES_MAX_PER_SESSION and FILES_MAX_BYTES_PER_SESSION per session. A file with a key is one entry per (client,
    end user, server, key): sent again, it replaces the earlier one for every session and agent referring to it. A session's file names a server and key that `file_target`
    accepts."""
    check_owner(client=client, session=session, agent=agent)
    result = FilesStoreResult()
    if not isinstance(files, list) or not files:
        result.errors.append({"index": None, "code": "invalid_files", "message": "Expected a list of files.",
                              "status": 400})
        return result
    if len(files) > settings.FILES_MAX_PER_REQUEST:
        result.errors.append({
            "index": None, "code": "too_many_files", "status": 400,
            "message": f"At most {settings.FILES_MAX_PER_REQUEST} files per request.",
        })
        return result
    checked: list[tuple[dict, bytes, filecheck.CheckedFile]] = []
    total = 0
    for index, item in enumerate(files):
        try:
            meta, data, info = _check_item(item, session=session, agent=agent, rules=rules, file_target=file_target)
        except filecheck.FileRejected as rejected:
            error = {"index": index, "code": rejected.code, "message": rejected.message, "status": rejected.status}
            if rejected.details:
                error["details"] = rejected.details
            result.errors.append(error)
            continue
        total += len(data)
        checked.append((meta, data, info))
    if not result.errors and total > settings.FILES_MAX_REQUEST_BYTES:
        result.errors.append({
            "index": None, "code": "request_too_large", "status": 413,
            "message": f"The files add up to more than {settings.FILES_MAX_REQUEST_BYTES} bytes.",
        })
    if result.errors:
        logger.info("rejected %d of %d file(s): %s", len(result.errors), len(files), [e["code"] for e in result.errors])
        return result

    lock_owner(session=session, agent=agent)
    if session is not None and agent is None and (quota_error := _session_quota_error(session, checked)):
        result.errors.append(quota_error)
        return result
    end_user = end_user_of(session, agent)
    lock_entries(client=client, end_user=end_user)
    expires_at = agent_expiry() if agent is not None else session_expiry()
    holders = audit_holders(session=session, agent=agent)
    events = []
    for meta, data, info in checked:
        row = None
        if meta["key"]:
            row = (StoredFile.objects.filter(client=client, end_user=end_user, server=meta["server"], key=meta["key"])
                   .defer("content").first())
        fields = dict(
            file_type=meta["type"], filename=info.filename, content_type=info.content_type, detected=info.detected,
            size=info.size, fingerprint=fingerprint(data), content=data,
        )
        if row is None:
            row = StoredFile.objects.create(client=client, end_user=end_user, server=meta["server"], key=meta["key"],
                                            expires_at=expires_at, **fields)
            action = AuditEvent.Action.CREATE
        else:
            for name, value in fields.items():
                setattr(row, name, value)
            if row.expires_at is not None and row.expires_at <= timezone.now():
                row.expires_at = expires_at  # expired, not purged yet: a new file starts a new lifetime
            row.save()
            action = AuditEvent.Action.UPDATE
        hold(row, session=session, agent=agent, expires_at=expires_at)
        events.append(audit_event(row, action, actor, reason, **holders))
        result.files.append(file_metadata(row))
    AuditEvent.objects.bulk_create(events)
    logger.info("stored %d file(s) (%s)", len(events), reason)
    return result


def files_collected(*, session: Any) -> set[str]:
    """Keys of live files this session refers to, both bare ("KEY") and qualified ("server:KEY")."""
    keys: set[str] = set()
    held = VaultReference.objects.filter(session_id=session.pk, stored_file__isnull=False).values("stored_file")
    rows = StoredFile.objects.filter(pk__in=held).filter(live()).exclude(key="").values_list("server", "key")
    for server, key in rows:
        keys.add(key)
        if server:
            keys.add(f"{server}:{key}")
    return keys


def file_keys_held(*, client: ApiClient, session: Any = None, agent: Any = None) -> set[str]:
    """Keys of the live files the agent (and the session it is built from) or the session can use now, bare
    ("KEY") and qualified ("server:KEY"), as files_collected."""
    check_owner(client=client, session=session, agent=agent)
    keys: set[str] = set()
    rows = scope(StoredFile, client=client, session=session, agent=agent).exclude(key="")
    for server, key in rows.values_list("server", "key"):
        keys.add(key)
        if server:
            keys.add(f"{server}:{key}")
    return keys


def files_list(*, client: ApiClient, session: Any = None, agent: Any = None) -> list[dict]:
    check_owner(client=client, session=session, agent=agent)
    rows = scope(StoredFile, client=client, session=session, agent=agent).defer("content")
    return [file_metadata(row) for row in rows]


@transaction.atomic
def file_delete(*, client: ApiClient, file_id, actor: ActorLike, reason: str) -> None:
    """Delete one file: every session and agent that referred to it loses it."""
    row = StoredFile.objects.filter(client=client, pk=uuid_or_none(file_id)).defer("content").first()
    if row is None:
        raise NotFound("File not found.")
    audit_event(row, AuditEvent.Action.DELETE, actor, reason).save()
    row.delete()


def file_ids_for_use(
    *, client: ApiClient, session: Any = None, agent: Any = None, server: str, keys: list[str]
) -> dict[str, str]:
    """{key: file id} of the live file that stands for each of `keys` of one server (names and ids only, for
    file_materialize): the one uploaded for this server and key, else one uploaded with the key alone, else one
    with the key for another of the owner's servers (a key with no server satisfies any server's requirement, as in
    files_collected). Keys without a live file are left out."""
    check_owner(client=client, session=session, agent=agent)
    rows = scope(StoredFile, client=client, session=session, agent=agent).filter(key__in=keys).defer("content")
    chosen: dict[str, str] = {}
    for row in sorted(preferred(rows, agent), key=lambda r: (0 if r.server == server else 1 if not r.server else 2,
                                                             -r.updated_at.timestamp())):
        chosen.setdefault(row.key, str(row.pk))
    return chosen
