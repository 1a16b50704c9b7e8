"""Services and selectors for credentials, files and their audit trail (issue 5).

Every write is one transaction, validates everything first and stores all or nothing. Every read of a value
for use, every create/update/delete/expiry writes an AuditEvent naming who (an Actor), what (server and key,
never a value), when and why (`reason`: the operation, e.g. "chat", "upload", "agent_create", "agent_run").
Scoping: a session or agent of another client is the same NotFound as an unknown one.

Lifetime: values held only by a session expire after CREDENTIAL_TTL_HOURS; `credentials_extend_ttl` hands them
to the agent built from the session, after which they live as long as the agent (AGENT_CREDENTIAL_TTL_DAYS=0,
the default) or that many days. Rows left with neither session nor agent are purged by the beat task.
"""

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from mcpagent.crypto import fingerprint
from mcpagent.errors import ApplicationError, NotFound
from mcpagent.metrics import CREDENTIAL_VALIDATION_FAILURES
from mcpagent.models import ApiClient
from sessions_app import filecheck, formats
from sessions_app.models import AuditEvent, Credential, Session, StoredFile

logger = logging.getLogger("sessions_app.credentials")

SERVER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/-]{0,199}$")
MAX_VALUES_PER_SERVER = 64
_UNSET: Any = object()


# --- actors and audit ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who acts: an API client, a staff user (admin) or the system (beat task, command)."""

    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def for_client(cls, client: ApiClient) -> "Actor":
        return cls(AuditEvent.ActorType.CLIENT, str(client.pk), client.name)

    @classmethod
    def for_staff(cls, user) -> "Actor":
        return cls(AuditEvent.ActorType.STAFF, str(user.pk), user.get_username())

    @classmethod
    def system(cls, label: str) -> "Actor":
        return cls(AuditEvent.ActorType.SYSTEM, "", label)


ActorLike = Actor | ApiClient | Any


def as_actor(actor: ActorLike) -> Actor:
    """An Actor from an Actor, an ApiClient, a staff user, or a label (the system)."""
    if isinstance(actor, Actor):
        return actor
    if isinstance(actor, ApiClient):
        return Actor.for_client(actor)
    if hasattr(actor, "get_username"):
        return Actor.for_staff(actor)
    return Actor.system(str(actor or "system"))


def _event(
    obj: Credential | StoredFile, action: str, actor: ActorLike, reason: str, metadata: dict | None = None
) -> AuditEvent:
    actor = as_actor(actor)
    is_file = isinstance(obj, StoredFile)
    return AuditEvent(
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label[:200],
        action=action,
        object_type=AuditEvent.ObjectType.FILE if is_file else AuditEvent.ObjectType.CREDENTIAL,
        object_id=str(obj.pk),
        server=obj.server,
        key=obj.key,
        client_id=obj.client_id,
        session_id=obj.session_id,
        agent_id=obj.agent_id,
        reason=reason[:200],
        metadata=({"filename": obj.filename, "size": obj.size} if is_file else {}) | (metadata or {}),
    )


def audit_record(
    *, action: str, object_type: str, actor: ActorLike, reason: str, metadata: dict | None = None, **fields: Any
) -> AuditEvent:
    """A free-standing audit event (e.g. the rotation summary). Never pass values in metadata."""
    actor = as_actor(actor)
    return AuditEvent.objects.create(
        action=action, object_type=object_type, actor_type=actor.type, actor_id=actor.id,
        actor_label=actor.label[:200], reason=reason[:200], metadata=metadata or {}, **fields,
    )


# --- ownership and lifetime ------------------------------------------------------------------------------


def _check_owner(*, client: ApiClient, session: Session | None, agent) -> None:
    if session is None and agent is None:
        raise ApplicationError("A session or an agent is required to hold credentials.", code="owner_required")
    if session is not None and session.client_id != client.pk:
        raise NotFound("Session not found.")
    if agent is not None and agent.client_id != client.pk:
        raise NotFound("Agent not found.")


def _lock_owner(*, session: Session | None, agent) -> None:
    """Serialise writers on one owner, so two concurrent stores of the same key cannot both insert."""
    if agent is not None:
        type(agent).objects.select_for_update().filter(pk=agent.pk).first()
    elif session is not None:
        Session.objects.select_for_update().filter(pk=session.pk).first()


def session_expiry() -> datetime:
    return timezone.now() + timedelta(hours=settings.CREDENTIAL_TTL_HOURS)


def agent_expiry() -> datetime | None:
    days = settings.AGENT_CREDENTIAL_TTL_DAYS
    return timezone.now() + timedelta(days=days) if days else None


def _live() -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())


def _scope(model, *, client: ApiClient, session: Session | None, agent) -> QuerySet:
    """Live rows the owner can use: the agent's, the session's, or (both given) the agent's plus those of the
    session it is built from, so an agent being created can use values not yet handed to it."""
    qs = model.objects.filter(client=client).filter(_live())
    if agent is not None and session is not None:
        return qs.filter(Q(agent=agent) | Q(session=session))
    if agent is not None:
        return qs.filter(agent=agent)
    return qs.filter(session=session)


def _preferred(rows, agent=None) -> list:
    """One row per (server, key): the agent's own, else the session's newest, else a copy another agent holds.
    Rows without a key (unnamed files) are all kept."""
    agent_id = agent.pk if agent is not None else None

    def rank(row) -> tuple:
        owner = 0 if agent_id is not None and row.agent_id == agent_id else 1 if row.agent_id is None else 2
        return owner, -row.updated_at.timestamp()

    chosen: dict[tuple[str, str], Any] = {}
    unkeyed = []
    for row in sorted(rows, key=rank):
        if row.key:
            chosen.setdefault((row.server, row.key), row)
        elif row.agent_id in (None, agent_id):
            unkeyed.append(row)
    return list(chosen.values()) + unkeyed


# --- credentials -----------------------------------------------------------------------------------------


@dataclass
class StoreResult:
    """Outcome of credentials_store: the masked entries stored, or {key: reason} (and nothing stored)."""

    server: str
    stored: list[dict] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if self.errors:
            raise ApplicationError(
                f"{len(self.errors)} value(s) for {self.server} were rejected; nothing was stored. "
                "Fix the ones named and send them again.",
                code="invalid_credentials",
                status=400,
                details={"server": self.server, "errors": self.errors},
            )


def _requirement_key(req: dict) -> str:
    return str(req.get("key") or req.get("credential_key") or "")


def catalogue_requirements(server: str) -> dict[str, dict]:
    """{key: requirement} for a catalogue server slug ({} if the server is not in the catalogue)."""
    from registry_app.models import CredentialRequirement

    rows = CredentialRequirement.objects.filter(server__slug=server).select_related("server")
    return {
        row.key: {
            "key": row.key, "kind": row.kind, "format": row.format, "pattern": row.pattern,
            "choices": row.choices, "required": row.required, "secret": row.secret, "server": server,
            "server_name": row.server.name, "repository_url": row.server.repository_url,
        }
        for row in rows
    }


def _validate(server: str, values: Any, requirements: list[dict] | None) -> tuple[dict[str, str], dict, dict]:
    """(clean values, requirement per key, {key: reason})."""
    if not isinstance(server, str) or not SERVER_RE.match(server):
        return {}, {}, {"*": "is not a valid server name"}
    if not isinstance(values, dict) or not values:
        return {}, {}, {"*": "expected an object of {credential key: value}"}
    if len(values) > MAX_VALUES_PER_SERVER:
        return {}, {}, {"*": f"at most {MAX_VALUES_PER_SERVER} values per server"}
    known = catalogue_requirements(server)
    for req in requirements or []:
        key = _requirement_key(req)
        if key:
            known[key] = {**known.get(key, {}), **{k: v for k, v in req.items() if v not in (None, "")},
                          "key": key, "server": server}
    clean: dict[str, str] = {}
    errors: dict[str, str] = {}
    for position, (key, raw) in enumerate(values.items(), start=1):
        if not formats.is_safe_key(key):
            # Never echo it: a value pasted in the name's place must not come back or reach a log.
            errors[f"<name #{position}>"] = (
                "is not a valid credential name (letters, digits, _ . -; at most 200; not a secret value)"
            )
            continue
        if known and key not in known:
            errors[key] = f"is not a setting of {server} (expected one of: {', '.join(sorted(known)[:30])})"
            continue
        value, reason = formats.normalise(raw)
        if reason is None:
            reason = formats.check_value(key, value, known.get(key))
        if reason is not None:
            errors[key] = reason
            continue
        clean[key] = value
    return clean, known, errors


@transaction.atomic
def credentials_store(
    *,
    client: ApiClient,
    session: Session | None = None,
    agent=None,
    server: str,
    values: dict[str, str],
    requirements: list[dict] | None = None,
    actor: ActorLike,
    reason: str,
) -> StoreResult:
    """Validate every value for one server, then store all of them or none (result.errors names each failing
    key with a reason that never contains the value; call result.raise_for_errors() for the 400).

    Values are trimmed; empty ones, over-long ones and ones not matching the key's format are rejected.
    `requirements` (dicts with key/credential_key and optionally pattern, format, choices, kind) are merged with
    the catalogue's requirements for `server`; when any are known, other keys are rejected. The owner is the
    agent when given (linked to `session` too), else the session. To make several servers all-or-nothing, call
    this inside one transaction.atomic and raise on the first result with errors."""
    _check_owner(client=client, session=session, agent=agent)
    clean, known, errors = _validate(server, values, requirements)
    result = StoreResult(server=server if isinstance(server, str) else "?", errors=errors)
    if errors:
        CREDENTIAL_VALIDATION_FAILURES.labels(stage="format").inc()
        logger.info("rejected %d credential value(s) for %s: %s", len(errors), result.server,
                    sorted(k for k in errors if k in known))
        return result

    _lock_owner(session=session, agent=agent)
    expires_at = agent_expiry() if agent is not None else session_expiry()
    owner = {"agent": agent} if agent is not None else {"session": session, "agent": None}
    events = []
    for key, value in clean.items():
        row = Credential.objects.filter(client=client, server=server, key=key, **owner).defer("value").first()
        hint = formats.mask(value)
        kind = str(known.get(key, {}).get("kind") or "")[:20]
        if row is None:
            row = Credential.objects.create(
                client=client, session=session, agent=agent, server=server, key=key, value=value, hint=hint,
                kind=kind, expires_at=expires_at,
            )
            action = AuditEvent.Action.CREATE
        else:
            row.value, row.hint, row.kind, row.expires_at = value, hint, kind or row.kind, expires_at
            row.save(update_fields=["value", "hint", "kind", "expires_at", "updated_at"])
            action = AuditEvent.Action.UPDATE
        events.append(_event(row, action, actor, reason))
        result.stored.append({"server": server, "key": key, "hint": hint, "action": str(action)})
    AuditEvent.objects.bulk_create(events)
    logger.info("stored %d value(s) for %s (%s)", len(events), server, reason)
    return result


@transaction.atomic
def credential_values_for_use(
    *,
    client: ApiClient,
    session: Session | None = None,
    agent=None,
    server: str,
    actor: ActorLike,
    reason: str,
    keys: list[str] | None = None,
) -> dict[str, str]:
    """The decrypted {key: value} of one server for an agent (its own values, then those of the session it is
    built from) or a session. Expired values are not returned. Audits read_for_use per value and stamps
    last_used_at. Pass the result straight into the server's env/headers: never log it, never put it in a task
    argument or result."""
    _check_owner(client=client, session=session, agent=agent)
    rows = _scope(Credential, client=client, session=session, agent=agent).filter(server=server)
    if keys is not None:
        rows = rows.filter(key__in=keys)
    chosen = _preferred(rows, agent)
    if chosen:
        Credential.objects.filter(pk__in=[row.pk for row in chosen]).update(last_used_at=timezone.now())
        AuditEvent.objects.bulk_create([_event(row, AuditEvent.Action.READ_FOR_USE, actor, reason) for row in chosen])
    return {row.key: row.value for row in chosen}


def credentials_collected(*, session: Session) -> dict[str, set[str]]:
    """{server: {keys}} of live values collected in this session (names only)."""
    collected: dict[str, set[str]] = {}
    for server, key in Credential.objects.filter(session=session).filter(_live()).values_list("server", "key"):
        collected.setdefault(server, set()).add(key)
    return collected


def credentials_missing(*, client: ApiClient, session: Session, requirements: list[dict]) -> list[dict]:
    """The requirements (as given: dicts with mcp_server/credential_key or server/key, never values) that have
    no live value in the session. Requirements marked required=False are skipped."""
    _check_owner(client=client, session=session, agent=None)
    collected = credentials_collected(session=session)
    missing = []
    for req in requirements:
        if req.get("required") is False:
            continue
        server = str(req.get("mcp_server") or req.get("server") or "")
        if _requirement_key(req) not in collected.get(server, set()):
            missing.append(req)
    return missing


def credential_masked(credential: Credential) -> dict:
    """API/admin view of a credential: names and a masked hint, never the value."""
    return {
        "id": str(credential.pk), "server": credential.server, "key": credential.key, "hint": credential.hint,
        "kind": credential.kind, "expires_at": credential.expires_at, "last_used_at": credential.last_used_at,
        "created_at": credential.created_at, "updated_at": credential.updated_at,
    }


def credentials_masked(*, client: ApiClient, session: Session | None = None, agent=None) -> list[dict]:
    _check_owner(client=client, session=session, agent=agent)
    rows = _scope(Credential, client=client, session=session, agent=agent).defer("value")
    return [credential_masked(row) for row in rows.order_by("server", "key")]


@transaction.atomic
def credential_delete(*, client: ApiClient, credential_id, actor: ActorLike, reason: str) -> None:
    row = Credential.objects.filter(client=client, pk=_uuid_or_none(credential_id)).defer("value").first()
    if row is None:
        raise NotFound("Credential not found.")
    _event(row, AuditEvent.Action.DELETE, actor, reason).save()
    row.delete()


@transaction.atomic
def credentials_for_session_delete(
    *, client: ApiClient | None = None, session: Session, actor: ActorLike, reason: str
) -> dict[str, int]:
    """Delete the credentials and files of this session that no live agent holds: those only the session holds
    and those of its agents that failed (copies no one can use once the session is gone). Values a ready agent,
    or one still being validated, holds stay with it. Call it before deleting the session (the session's client
    is checked when `client` is given)."""
    from agents_app.models import Agent

    _check_owner(client=client or session.client, session=session, agent=None)
    unheld = Q(agent__isnull=True) | Q(agent__status=Agent.Status.FAILED)
    return _delete_rows(
        Credential.objects.filter(unheld, session=session).defer("value"),
        StoredFile.objects.filter(unheld, session=session).defer("content"),
        AuditEvent.Action.DELETE, actor, reason,
    )


@transaction.atomic
def credentials_for_agent_delete(*, client: ApiClient | None = None, agent, actor: ActorLike, reason: str) -> dict[str, int]:
    """Delete the credentials and files an agent holds (call before deleting the agent, for the audit)."""
    _check_owner(client=client or agent.client, session=None, agent=agent)
    return _delete_rows(
        Credential.objects.filter(agent=agent).defer("value"),
        StoredFile.objects.filter(agent=agent).defer("content"),
        AuditEvent.Action.DELETE, actor, reason,
    )


def _delete_rows(credentials: QuerySet, files: QuerySet, action: str, actor: ActorLike, reason: str,
                 metadata: dict | None = None) -> dict[str, int]:
    rows = list(credentials.select_for_update(of=("self",))) + list(files.select_for_update(of=("self",)))
    AuditEvent.objects.bulk_create([_event(row, action, actor, reason, metadata) for row in rows])
    cred_ids = [row.pk for row in rows if isinstance(row, Credential)]
    file_ids = [row.pk for row in rows if isinstance(row, StoredFile)]
    Credential.objects.filter(pk__in=cred_ids).delete()
    StoredFile.objects.filter(pk__in=file_ids).delete()
    return {"credentials": len(cred_ids), "files": len(file_ids)}


@transaction.atomic
def credentials_extend_ttl(
    *, client: ApiClient | None = None, session: Session, agent, actor: ActorLike, reason: str,
    expires_at: datetime | None = _UNSET, replace: bool = False,
) -> dict[str, int]:
    """Hand the session's live credentials and files to `agent` (built from this session), with the agent
    lifetime (`expires_at`, default agent_expiry(): none, or AGENT_CREDENTIAL_TTL_DAYS from now).

    Call it once the agent is created (until then the agent uses the session's values, which expire after
    CREDENTIAL_TTL_HOURS). Values only the session holds are adopted; values an earlier agent of the session
    already adopted are copied, so each agent owns its values and deleting one leaves the other working.
    Values stored for the agent directly win over the session's, unless `replace`: then a value only the session
    holds (sent after the agent adopted the session's values) replaces the agent's for the same server and key
    (the agent's row deleted and audited)."""
    client = client or agent.client
    _check_owner(client=client, session=session, agent=agent)
    expires = agent_expiry() if expires_at is _UNSET else expires_at
    _lock_owner(session=None, agent=agent)
    counts = {"credentials": 0, "files": 0}
    events = []
    for model, kind in ((Credential, "credentials"), (StoredFile, "files")):
        rows = list(_scope(model, client=client, session=session, agent=agent).select_for_update(of=("self",)))
        if replace:
            newer = {(row.server, row.key): row for row in rows if row.agent_id is None and row.key}
            replaced = [row for row in rows if row.agent_id == agent.pk and (row.server, row.key) in newer]
            events += [_event(row, AuditEvent.Action.DELETE, actor, reason,
                              {"replaced_by": str(newer[(row.server, row.key)].pk)}) for row in replaced]
            model.objects.filter(pk__in=[row.pk for row in replaced]).delete()
            rows = [row for row in rows if row not in replaced]
        for row in _preferred(rows, agent):
            if row.agent_id == agent.pk:
                continue  # stored for this agent directly: it already has the agent's lifetime
            if row.agent_id is None:
                row.agent, row.expires_at = agent, expires
                row.save(update_fields=["agent", "expires_at", "updated_at"])
                events.append(_event(row, AuditEvent.Action.UPDATE, actor, reason, {"adopted_by_agent": str(agent.pk)}))
            else:
                source = row.pk
                row.pk, row.agent, row.expires_at, row.last_used_at = None, agent, expires, None
                row._state.adding = True
                row.save(force_insert=True)
                events.append(_event(row, AuditEvent.Action.CREATE, actor, reason, {"copied_from": str(source)}))
            counts[kind] += 1
    AuditEvent.objects.bulk_create(events)
    return counts


@transaction.atomic
def credentials_record_validation(
    *, client: ApiClient, session: Session | None = None, agent=None, server: str, accepted: bool, actor: ActorLike,
    reason: str, details: dict | None = None,
) -> None:
    """Audit the outcome of a live validation (server started with the credentials, tools listed) for each of
    the server's credentials. `details` must not hold values (tool counts, error codes)."""
    _check_owner(client=client, session=session, agent=agent)
    rows = _scope(Credential, client=client, session=session, agent=agent).filter(server=server).defer("value")
    metadata = {"accepted": accepted} | (details or {})
    if not accepted:
        CREDENTIAL_VALIDATION_FAILURES.labels(stage="server").inc()
    AuditEvent.objects.bulk_create([_event(row, AuditEvent.Action.VALIDATE, actor, reason, metadata) for row in rows])


# --- files -------------------------------------------------------------------------------------------------


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


def _curated_file_problems(server: str, key: str, data: bytes) -> list[str]:
    """Checks from the curated file recipes (registry_app.credinfo) for the file a server's key expects."""
    if not (server and key):
        return []
    try:
        from registry_app.credinfo import file_problems, service_files
        from registry_app.models import McpServer
    except ImportError:
        return []
    catalogue = McpServer.objects.filter(slug=server).first()
    if catalogue is None:
        return []
    specs = service_files(server_name=catalogue.name, repository_url=catalogue.repository_url, slug=server)
    spec = next((s for s in specs if key in s.get("keys", [])), None)
    return file_problems(spec, data) if spec else []


def _file_requirement_keys(server_slug: str) -> list[str]:
    from registry_app.models import CredentialRequirement

    requirements = CredentialRequirement.objects.filter(server__slug=server_slug).filter(
        Q(location=CredentialRequirement.Location.FILE) | Q(kind=CredentialRequirement.Kind.FILE_PATH))
    return sorted(requirements.values_list("key", flat=True))


def _check_file_target(*, session: Session, server: str, key: str) -> str:
    """The catalogue server a session file is for (its slug; "" for none). `server` must be one of the session's
    planned servers or an active catalogue server, and `key` one of that server's file requirements; a key sent
    without a server must be a file requirement of a planned server once the session has a plan (before that,
    any safe key: it is matched when the plan is made). A file for nothing that exists is never used."""
    from agents_app.master.plan import Plan
    from registry_app.models import McpServer

    plan = Plan.from_dict(session.context["plan"]) if session.context.get("plan") else None
    planned = plan.server_slugs() if plan else []
    if server:
        slug = next((planned_slug for planned_slug in planned if planned_slug.lower() == server.lower()), None)
        if slug is None and McpServer.objects.filter(slug=server, status=McpServer.Status.ACTIVE).exists():
            slug = server
        if slug is None:
            raise filecheck.FileRejected(
                "unknown_server", f"server '{server}' is neither a server of this session nor in the catalogue.",
                400, {"field": "server", "session_servers": planned})
        if key and key not in (keys := _file_requirement_keys(slug)):
            raise filecheck.FileRejected(
                "unknown_file_key", f"key '{key}' is not a file {slug} asks for.", 400,
                {"field": "key", "server": slug, "file_keys": keys})
        return slug
    if plan is not None:
        keys = sorted({k for slug in planned for k in _file_requirement_keys(slug)})
        if key not in keys:
            raise filecheck.FileRejected(
                "unknown_file_key", f"key '{key}' is not a file any server of this session asks for.", 400,
                {"field": "key", "file_keys": keys})
    return ""


def _session_quota_error(session: Session, checked: list) -> dict | None:
    """FILES_MAX_PER_SESSION / FILES_MAX_BYTES_PER_SESSION over the session's live files after this store (a keyed
    file replaces the earlier one for its server and key, which then no longer counts)."""
    stored = StoredFile.objects.filter(session=session).filter(_live())
    replaced = Q(pk__in=[])
    for meta, _data, _info in checked:
        if meta["key"]:
            replaced |= Q(agent=None, server=meta["server"], key=meta["key"])
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


@transaction.atomic
def files_store(
    *,
    client: ApiClient,
    session: Session | None = None,
    agent=None,
    files: list[dict],
    actor: ActorLike,
    reason: str,
) -> FilesStoreResult:
    """Check and store files (each {filename, content: base64 str | data: bytes, type?, key?, server?}): all or
    none. Limits: FILE_MAX_BYTES each, FILES_MAX_REQUEST_BYTES and FILES_MAX_PER_REQUEST per call,
    FILES_MAX_PER_SESSION and FILES_MAX_BYTES_PER_SESSION per session. A file with a key replaces the session's
    earlier file for the same server and key. A session's file names a server and key that exist
    (_check_file_target)."""
    _check_owner(client=client, session=session, agent=agent)
    result = FilesStoreResult()
    if not isinstance(files, list) or not files:
        result.errors.append({"index": None, "code": "invalid_files", "message": "Expected a list of files.", "status": 400})
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
            if session is not None and agent is None and (server or key):
                server = _check_file_target(session=session, server=server, key=key)
            data = _file_bytes(item)
            info = filecheck.check_file(filename=item.get("filename"), data=data)
            if problems := _curated_file_problems(server, key, data):
                raise filecheck.FileRejected(
                    "invalid_credential_file", f"The file does not fit {key}: {'; '.join(problems)}.", 400,
                    {"problems": problems},
                )
            total += len(data)
            checked.append(({"type": file_type, "key": key, "server": server}, data, info))
        except filecheck.FileRejected as rejected:
            error = {"index": index, "code": rejected.code, "message": rejected.message, "status": rejected.status}
            if rejected.details:
                error["details"] = rejected.details
            result.errors.append(error)
    if not result.errors and total > settings.FILES_MAX_REQUEST_BYTES:
        result.errors.append({
            "index": None, "code": "request_too_large", "status": 413,
            "message": f"The files add up to more than {settings.FILES_MAX_REQUEST_BYTES} bytes.",
        })
    if result.errors:
        logger.info("rejected %d of %d file(s): %s", len(result.errors), len(files), [e["code"] for e in result.errors])
        return result

    _lock_owner(session=session, agent=agent)
    if session is not None and agent is None and (quota_error := _session_quota_error(session, checked)):
        result.errors.append(quota_error)
        return result
    expires_at = agent_expiry() if agent is not None else session_expiry()
    events = []
    for meta, data, info in checked:
        row = None
        if meta["key"]:
            owner = {"agent": agent} if agent is not None else {"session": session, "agent": None}
            row = (
                StoredFile.objects.filter(client=client, server=meta["server"], key=meta["key"], **owner)
                .defer("content").first()
            )
        fields = dict(
            file_type=meta["type"], filename=info.filename, content_type=info.content_type, detected=info.detected,
            size=info.size, fingerprint=fingerprint(data), content=data, expires_at=expires_at,
        )
        if row is None:
            row = StoredFile.objects.create(
                client=client, session=session, agent=agent, server=meta["server"], key=meta["key"], **fields
            )
            action = AuditEvent.Action.CREATE
        else:
            for name, value in fields.items():
                setattr(row, name, value)
            row.save()
            action = AuditEvent.Action.UPDATE
        events.append(_event(row, action, actor, reason))
        result.files.append(file_metadata(row))
    AuditEvent.objects.bulk_create(events)
    logger.info("stored %d file(s) (%s)", len(events), reason)
    return result


def files_collected(*, session: Session) -> set[str]:
    """Keys of live files in this session, both bare ("KEY") and qualified ("server:KEY")."""
    keys: set[str] = set()
    for server, key in StoredFile.objects.filter(session=session).filter(_live()).exclude(key="").values_list("server", "key"):
        keys.add(key)
        if server:
            keys.add(f"{server}:{key}")
    return keys


def files_list(*, client: ApiClient, session: Session | None = None, agent=None) -> list[dict]:
    _check_owner(client=client, session=session, agent=agent)
    rows = _scope(StoredFile, client=client, session=session, agent=agent).defer("content")
    return [file_metadata(row) for row in rows]


@transaction.atomic
def file_delete(*, client: ApiClient, file_id, actor: ActorLike, reason: str) -> None:
    row = StoredFile.objects.filter(client=client, pk=_uuid_or_none(file_id)).defer("content").first()
    if row is None:
        raise NotFound("File not found.")
    _event(row, AuditEvent.Action.DELETE, actor, reason).save()
    row.delete()


def file_ids_for_use(
    *, client: ApiClient, session: Session | None = None, agent=None, server: str, keys: list[str]
) -> dict[str, str]:
    """{key: file id} of the live file that stands for each of `keys` of one server (names and ids only, for
    file_materialize): the one uploaded for this server and key, else one uploaded with the key alone, else one
    with the key for another of the owner's servers (a key with no server satisfies any server's requirement, as in
    files_collected). Keys without a live file are left out."""
    _check_owner(client=client, session=session, agent=agent)
    rows = _scope(StoredFile, client=client, session=session, agent=agent).filter(key__in=keys).defer("content")
    chosen: dict[str, str] = {}
    for row in sorted(_preferred(rows, agent), key=lambda r: (0 if r.server == server else 1 if not r.server else 2,
                                                              -r.updated_at.timestamp())):
        chosen.setdefault(row.key, str(row.pk))
    return chosen


def _materialize_root() -> str:
    configured = settings.FILES_MATERIALIZE_DIR
    if configured:
        return configured
    # RAM-backed when available, so decrypted files never reach a disk.
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else tempfile.gettempdir()


_MATERIALIZE_PREFIX = "mcpagent-files-"


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
    session: Session | None = None,
    agent=None,
    file_ids: list | None = None,
    actor: ActorLike,
    reason: str,
) -> Iterator[dict[str, Path]]:
    """Write the live files of a session/agent (optionally only `file_ids`) decrypted into a private folder
    (0700, files 0600) and yield {key (or file id when it has none): path}; everything is removed on exit,
    also on error. Hand a path to a server as the env var named by its key."""
    with transaction.atomic():
        _check_owner(client=client, session=session, agent=agent)
        rows = _scope(StoredFile, client=client, session=session, agent=agent)
        if file_ids is not None:
            rows = rows.filter(pk__in=[_uuid_or_none(i) for i in file_ids])
        rows = _preferred(rows, agent)
        if file_ids is not None and len(rows) != len(set(map(str, file_ids))):
            raise NotFound("File not found.")
        if rows:
            StoredFile.objects.filter(pk__in=[row.pk for row in rows]).update(last_used_at=timezone.now())
            AuditEvent.objects.bulk_create([_event(row, AuditEvent.Action.READ_FOR_USE, actor, reason) for row in rows])
    # The owner's pid is in the name, so that materialized_files_sweep can tell a folder whose process died
    # without cleaning up (a worker killed at its hard time limit) from one in use.
    folder = Path(tempfile.mkdtemp(prefix=f"{_MATERIALIZE_PREFIX}{os.getpid()}-", dir=_materialize_root()))
    try:
        os.chmod(folder, 0o700)
        paths: dict[str, Path] = {}
        for row in rows:
            subdir = folder / str(row.pk)
            subdir.mkdir(mode=0o700)
            path = subdir / row.filename
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(row.content)
            paths[row.key or str(row.pk)] = path
        yield paths
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- expiry ------------------------------------------------------------------------------------------------


def credentials_purge_expired(*, batch_size: int = 500) -> dict[str, int]:
    """Delete expired credentials and files, and those whose session and agent are both gone; audit each as
    `expire` (reason "ttl" or "orphaned"). Batches of `batch_size`, each its own transaction; rows another
    transaction holds are left for the next run. Returns counts only."""
    counts = {"credentials": 0, "files": 0}
    for reason, condition in (
        ("ttl", Q(expires_at__lte=timezone.now())),
        ("orphaned", Q(session__isnull=True, agent__isnull=True)),
    ):
        for model, deferred in ((Credential, "value"), (StoredFile, "content")):
            while True:
                with transaction.atomic():
                    batch = list(
                        model.objects.filter(condition).defer(deferred).order_by("pk")
                        .select_for_update(skip_locked=True)[:batch_size]
                    )
                    if not batch:
                        break
                    AuditEvent.objects.bulk_create(
                        [_event(row, AuditEvent.Action.EXPIRE, Actor.system("purge_expired_credentials"), reason)
                         for row in batch]
                    )
                    model.objects.filter(pk__in=[row.pk for row in batch]).delete()
                counts["credentials" if model is Credential else "files"] += len(batch)
                if len(batch) < batch_size:
                    break
    if counts["credentials"] or counts["files"]:
        logger.info("purged %d credential(s) and %d file(s)", counts["credentials"], counts["files"])
    return counts


# --- helpers -----------------------------------------------------------------------------------------------


def _uuid_or_none(value) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None
