"""Credential values in the vault: validate and store, read for use, list masked, hand over, delete.

Every write is one transaction, validates everything first and stores all or nothing. Every read of a value
for use and every create/update/delete writes an AuditEvent (see mcpagent.vault.audit). Holders are objects of
the caller's apps (see mcpagent.vault.holders); what is known about a server's settings comes in as `rules`.
"""

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from mcpagent.errors import ApplicationError, NotFound
from mcpagent.metrics import CREDENTIAL_VALIDATION_FAILURES
from mcpagent.models import ApiClient
from mcpagent.vault import formats, verify
from mcpagent.vault.audit import ActorLike, audit_event
from mcpagent.vault.holders import (
    agent_expiry, audit_holders, check_owner, end_user_of, held_by, hold, live, lock_entries, lock_owner, preferred,
    scope, session_expiry, uuid_or_none,
)
from mcpagent.vault.models import AuditEvent, Credential, StoredFile, VaultReference
from mcpagent.vault.rules import NO_RULES, CredentialRules

logger = logging.getLogger("mcpagent.vault")

SERVER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/-]{0,199}$")
MAX_VALUES_PER_SERVER = 64
_UNSET: Any = object()


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


def requirement_key(req: dict) -> str:
    return str(req.get("key") or req.get("credential_key") or "")


def _validate(server: str, values: Any, requirements: list[dict] | None,
              rules: CredentialRules) -> tuple[dict[str, str], dict, dict]:
    """(clean values, requirement per key, {key: reason})."""
    if not isinstance(server, str) or not SERVER_RE.match(server):
        return {}, {}, {"*": "is not a valid server name"}
    if not isinstance(values, dict) or not values:
        return {}, {}, {"*": "expected an object of {credential key: value}"}
    if len(values) > MAX_VALUES_PER_SERVER:
        return {}, {}, {"*": f"at most {MAX_VALUES_PER_SERVER} values per server"}
    known = rules.requirements(server)
    for req in requirements or []:
        key = requirement_key(req)
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
            # A key the server does not declare is matched on its name alone (as for a client's own server).
            reason = formats.check_value(key, value, known.get(key), curated=rules.curated(key, known.get(key) or {}))
        if reason is not None:
            errors[key] = reason
            continue
        clean[key] = value
    return clean, known, errors


@transaction.atomic
def credentials_store(
    *,
    client: ApiClient,
    session: Any = None,
    agent: Any = None,
    server: str,
    values: dict[str, str],
    requirements: list[dict] | None = None,
    actor: ActorLike,
    reason: str,
    rules: CredentialRules = NO_RULES,
) -> StoreResult:
    """Validate every value for one server, then store all of them or none (result.errors names each failing
    key with a reason that never contains the value; call result.raise_for_errors() for the 400).

    Values are trimmed; empty ones, over-long ones and ones not matching the key's format are rejected.
    `requirements` (dicts with key/credential_key and optionally pattern, format, choices, kind) are merged with
    `rules.requirements(server)`; when any are known, other keys are rejected. A value is one entry per (client,
    end user, server, key): sending it again replaces it for every session and agent that refers to it. The
    holder that refers to it is the agent when given, else the session. To make several servers all-or-nothing,
    call this inside one transaction.atomic and raise on the first result with errors."""
    check_owner(client=client, session=session, agent=agent)
    clean, known, errors = _validate(server, values, requirements, rules)
    result = StoreResult(server=server if isinstance(server, str) else "?", errors=errors)
    if errors:
        CREDENTIAL_VALIDATION_FAILURES.labels(stage="format").inc()
        logger.info("rejected %d credential value(s) for %s: %s", len(errors), result.server,
                    sorted(k for k in errors if k in known))
        return result

    # Before any lock: a provider's identity call may take up to CREDENTIAL_VERIFY_TIMEOUT_SECONDS.
    checked = verify.verify_values(clean)
    rejected = {key: outcome.reason for key, outcome in checked.items() if outcome.status == "rejected"}
    if rejected:
        CREDENTIAL_VALIDATION_FAILURES.labels(stage="provider").inc()
        logger.info("provider rejected %d credential value(s) for %s: %s", len(rejected), result.server,
                    sorted(rejected))
        result.errors = rejected
        return result

    lock_owner(session=session, agent=agent)
    end_user = end_user_of(session, agent)
    lock_entries(client=client, end_user=end_user)
    expires_at = agent_expiry() if agent is not None else session_expiry()
    holders = audit_holders(session=session, agent=agent)
    events = []
    for key, value in clean.items():
        outcome = checked.get(key)
        verification = {"verification": outcome.status if outcome else "",
                        "identity": outcome.identity if outcome else ""}
        row = (Credential.objects.filter(client=client, end_user=end_user, server=server, key=key)
               .defer("value").first())
        hint = formats.mask(value)
        kind = str(known.get(key, {}).get("kind") or "")[:20]
        if row is None:
            row = Credential.objects.create(
                client=client, end_user=end_user, server=server, key=key, value=value, hint=hint, kind=kind,
                expires_at=expires_at, **verification,
            )
            action = AuditEvent.Action.CREATE
        else:
            row.value, row.hint, row.kind = value, hint, kind or row.kind
            if row.expires_at is not None and row.expires_at <= timezone.now():
                row.expires_at = expires_at  # expired, not purged yet: a new value starts a new lifetime
            row.verification, row.identity = verification["verification"], verification["identity"]
            row.save(update_fields=["value", "hint", "kind", "expires_at", "verification", "identity", "updated_at"])
            action = AuditEvent.Action.UPDATE
        hold(row, session=session, agent=agent, expires_at=expires_at)
        events.append(audit_event(row, action, actor, reason, {"verification": row.verification} if outcome else None,
                                  **holders))
        entry = {"server": server, "key": key, "hint": hint, "action": str(action)}
        if outcome is not None:
            entry["verification"] = outcome.status
            if outcome.status == verify.UNVERIFIED:
                entry["note"] = f"stored unverified: {outcome.reason}"
        result.stored.append(entry)
    AuditEvent.objects.bulk_create(events)
    logger.info("stored %d value(s) for %s (%s)", len(events), server, reason)
    return result


@transaction.atomic
def credential_values_for_use(
    *,
    client: ApiClient,
    session: Any = None,
    agent: Any = None,
    server: str,
    actor: ActorLike,
    reason: str,
    keys: list[str] | None = None,
) -> dict[str, str]:
    """The decrypted {key: value} of one server for an agent (its own values, then those of the session it is
    built from) or a session. Expired values are not returned. Audits read_for_use per value and stamps
    last_used_at. Pass the result straight into the server's env/headers: never log it, never put it in a task
    argument or result."""
    check_owner(client=client, session=session, agent=agent)
    rows = scope(Credential, client=client, session=session, agent=agent).filter(server=server)
    if keys is not None:
        rows = rows.filter(key__in=keys)
    chosen = preferred(rows, agent)
    if chosen:
        Credential.objects.filter(pk__in=[row.pk for row in chosen]).update(last_used_at=timezone.now())
        holders = audit_holders(session=session, agent=agent)
        AuditEvent.objects.bulk_create([audit_event(row, AuditEvent.Action.READ_FOR_USE, actor, reason, **holders)
                                        for row in chosen])
    return {row.key: row.value for row in chosen}


def credential_values_to_mask(*, client: ApiClient, session: Any = None, agent: Any = None) -> list[str]:
    """Every live value the agent or session refers to, only to mask them in text about to be stored (a message
    the user pasted one into). Not audited as a read: the values go into a Redactor and nowhere else."""
    check_owner(client=client, session=session, agent=agent)
    return [value for value in scope(Credential, client=client, session=session, agent=agent)
            .values_list("value", flat=True) if isinstance(value, str)]


def credentials_collected(*, session: Any) -> dict[str, set[str]]:
    """{server: {keys}} of live values this session refers to (names only)."""
    collected: dict[str, set[str]] = {}
    held = VaultReference.objects.filter(session_id=session.pk, credential__isnull=False).values("credential")
    for server, key in Credential.objects.filter(pk__in=held).filter(live()).values_list("server", "key"):
        collected.setdefault(server, set()).add(key)
    return collected


def credential_states(*, client: ApiClient, session: Any = None, agent: Any = None) -> dict[str, dict[str, str]]:
    """{server: {key: verification}} of the live values the agent (and the session it is built from) or the
    session can use now (names and "verified" / "unverified" / "" only): what an agent's configuration refers to
    but is not here has been deleted or has expired."""
    check_owner(client=client, session=session, agent=agent)
    held: dict[str, dict[str, str]] = {}
    rows = scope(Credential, client=client, session=session, agent=agent).values_list("server", "key", "verification")
    for server, key, verification in rows:
        held.setdefault(server, {})[key] = verification
    return held


def credentials_missing(*, client: ApiClient, session: Any, requirements: list[dict]) -> list[dict]:
    """The requirements (as given: dicts with mcp_server/credential_key or server/key, never values) that have
    no live value in the session. Requirements marked required=False are skipped."""
    check_owner(client=client, session=session, agent=None)
    collected = credentials_collected(session=session)
    missing = []
    for req in requirements:
        if req.get("required") is False:
            continue
        server = str(req.get("mcp_server") or req.get("server") or "")
        if requirement_key(req) not in collected.get(server, set()):
            missing.append(req)
    return missing


def credential_masked(credential: Credential) -> dict:
    """API/admin view of a credential: names and a masked hint, never the value."""
    return {
        "id": str(credential.pk), "server": credential.server, "key": credential.key, "hint": credential.hint,
        "kind": credential.kind, "expires_at": credential.expires_at, "last_used_at": credential.last_used_at,
        "created_at": credential.created_at, "updated_at": credential.updated_at,
    }


def credentials_masked(*, client: ApiClient, session: Any = None, agent: Any = None) -> list[dict]:
    check_owner(client=client, session=session, agent=agent)
    rows = scope(Credential, client=client, session=session, agent=agent).defer("value")
    return [credential_masked(row) for row in rows.order_by("server", "key")]


@transaction.atomic
def credential_delete(*, client: ApiClient, credential_id, actor: ActorLike, reason: str) -> None:
    """Delete one entry: every session and agent that referred to it loses it."""
    row = Credential.objects.filter(client=client, pk=uuid_or_none(credential_id)).defer("value").first()
    if row is None:
        raise NotFound("Credential not found.")
    audit_event(row, AuditEvent.Action.DELETE, actor, reason).save()
    row.delete()


@transaction.atomic
def credentials_for_session_delete(
    *, client: ApiClient | None = None, session: Any, actor: ActorLike, reason: str,
    released_agent_ids: Iterable = (),
) -> dict[str, int]:
    """Drop this session's references, and those of `released_agent_ids` (agents built from it that can no
    longer use them: the caller names its failed ones), then delete the credentials and files no session or
    agent refers to any more (audited). Entries a live agent still refers to stay. Call it before deleting the
    session (the session's client is checked when `client` is given). Returns the entries deleted."""
    check_owner(client=client or session.client, session=session, agent=None)
    return entries_release(held_by(session=session) | Q(agent_id__in=list(released_agent_ids)), actor, reason,
                           session_id=session.pk)


@transaction.atomic
def credentials_for_agent_delete(*, client: ApiClient | None = None, agent: Any, actor: ActorLike,
                                 reason: str) -> dict[str, int]:
    """Drop the agent's references and delete the credentials and files no one refers to any more (call before
    deleting the agent, for the audit)."""
    check_owner(client=client or agent.client, session=None, agent=agent)
    return entries_release(held_by(agent=agent), actor, reason, agent_id=agent.pk)


def entries_release(references: Q, actor: ActorLike, reason: str, *, session_id: Any = None,
                    agent_id: Any = None) -> dict[str, int]:
    """Delete the references matching `references`, then the entries they pointed to that no reference is left
    to (each deletion audited, naming the holder released)."""
    dropped = VaultReference.objects.filter(references)
    credential_ids = set(dropped.exclude(credential=None).values_list("credential_id", flat=True))
    file_ids = set(dropped.exclude(stored_file=None).values_list("stored_file_id", flat=True))
    dropped.delete()
    still_held = VaultReference.objects.all()
    return delete_rows(
        Credential.objects.filter(pk__in=credential_ids)
        .exclude(pk__in=still_held.exclude(credential=None).values("credential")).defer("value"),
        StoredFile.objects.filter(pk__in=file_ids)
        .exclude(pk__in=still_held.exclude(stored_file=None).values("stored_file")).defer("content"),
        AuditEvent.Action.DELETE, actor, reason, session_id=session_id, agent_id=agent_id,
    )


def delete_rows(credentials: QuerySet, files: QuerySet, action: str, actor: ActorLike, reason: str,
                metadata: dict | None = None, *, session_id: Any = None, agent_id: Any = None) -> dict[str, int]:
    """Delete these entries (and every reference to them), each audited."""
    rows = list(credentials.select_for_update(of=("self",))) + list(files.select_for_update(of=("self",)))
    AuditEvent.objects.bulk_create([audit_event(row, action, actor, reason, metadata, session_id=session_id,
                                                agent_id=agent_id) for row in rows])
    cred_ids = [row.pk for row in rows if isinstance(row, Credential)]
    file_ids = [row.pk for row in rows if isinstance(row, StoredFile)]
    Credential.objects.filter(pk__in=cred_ids).delete()
    StoredFile.objects.filter(pk__in=file_ids).delete()
    return {"credentials": len(cred_ids), "files": len(file_ids)}


@transaction.atomic
def credentials_extend_ttl(
    *, client: ApiClient | None = None, session: Any, agent: Any, actor: ActorLike, reason: str,
    expires_at: datetime | None = _UNSET, replace: bool = False,
) -> dict[str, int]:
    """Let `agent` (built from this session) refer to the session's live credentials and files, and keep each
    alive at least for the agent's lifetime (`expires_at`, default agent_expiry(): none, or
    AGENT_CREDENTIAL_TTL_DAYS from now). No value is copied: the agent points to the same entries as the session
    (and as any other agent of the client and end user using them), so deleting one agent leaves the others
    working and a value sent again reaches all of them.

    Call it once the agent is created (until then the agent uses the session's references). `replace` is kept
    for callers: a value sent to the session after the agent adopted its own already replaced the shared entry.
    Returns the entries newly referenced by the agent."""
    client = client or agent.client
    check_owner(client=client, session=session, agent=agent)
    expires = agent_expiry() if expires_at is _UNSET else expires_at
    lock_owner(session=None, agent=agent)
    counts = {"credentials": 0, "files": 0}
    events = []
    for model, kind in ((Credential, "credentials"), (StoredFile, "files")):
        rows = scope(model, client=client, session=session, agent=None).defer(
            "value" if model is Credential else "content").select_for_update(of=("self",))
        for row in preferred(list(rows)):
            if hold(row, agent=agent, expires_at=expires):
                events.append(audit_event(row, AuditEvent.Action.UPDATE, actor, reason,
                                          {"adopted_by_agent": str(agent.pk)}, session_id=session.pk,
                                          agent_id=agent.pk))
                counts[kind] += 1
    AuditEvent.objects.bulk_create(events)
    return counts


@transaction.atomic
def credentials_record_validation(
    *, client: ApiClient, session: Any = None, agent: Any = None, server: str, accepted: bool, actor: ActorLike,
    reason: str, details: dict | None = None,
) -> None:
    """Audit the outcome of a live validation (server started with the credentials, tools listed) for each of
    the server's credentials. `details` must not hold values (tool counts, error codes)."""
    check_owner(client=client, session=session, agent=agent)
    rows = scope(Credential, client=client, session=session, agent=agent).filter(server=server).defer("value")
    metadata = {"accepted": accepted} | (details or {})
    if not accepted:
        CREDENTIAL_VALIDATION_FAILURES.labels(stage="server").inc()
    holders = audit_holders(session=session, agent=agent)
    AuditEvent.objects.bulk_create([audit_event(row, AuditEvent.Action.VALIDATE, actor, reason, metadata, **holders)
                                    for row in rows])
