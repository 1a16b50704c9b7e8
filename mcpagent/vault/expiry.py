"""Purge of expired vault entries, of references whose holder is gone, and of entries no one refers to."""

import logging

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from mcpagent.vault.audit import Actor, audit_event
from mcpagent.vault.holders import entry_field
from mcpagent.vault.models import AuditEvent, Credential, StoredFile, VaultReference

logger = logging.getLogger("mcpagent.vault")


def _holder_gone(live_session_ids: QuerySet | None, live_agent_ids: QuerySet | None) -> Q:
    """References whose session or agent no longer exists. Holders are plain ids, so the caller passes the ids
    that still exist (querysets of pks, evaluated in the database)."""
    gone = Q(pk__in=[])
    if live_session_ids is not None:
        gone |= Q(session_id__isnull=False) & ~Q(session_id__in=live_session_ids)
    if live_agent_ids is not None:
        gone |= Q(agent_id__isnull=False) & ~Q(agent_id__in=live_agent_ids)
    return gone


def _unreferenced(model) -> Q:
    field = entry_field(model)
    return ~Q(pk__in=VaultReference.objects.exclude(**{field: None}).values(field))


def _holders(model, batch: list) -> dict:
    """{entry pk: {session_id, agent_id}} of a session and an agent that still refer to each entry, for the audit."""
    field = entry_field(model)
    found: dict = {}
    for ref in VaultReference.objects.filter(**{f"{field}__in": batch}).order_by("pk"):
        held = found.setdefault(getattr(ref, f"{field}_id"), {"session_id": None, "agent_id": None})
        held["session_id"] = held["session_id"] or ref.session_id
        held["agent_id"] = held["agent_id"] or ref.agent_id
    return found


def credentials_purge_expired(*, batch_size: int = 500, live_session_ids: QuerySet | None = None,
                              live_agent_ids: QuerySet | None = None) -> dict[str, int]:
    """Delete expired credentials and files, drop references whose session or agent is gone, then delete the
    entries no reference is left to; audit each deletion as `expire` (reason "ttl" or "orphaned"). Batches of
    `batch_size`, each its own transaction; rows another transaction holds are left for the next run. Returns
    counts only."""
    counts = {"credentials": 0, "files": 0}
    VaultReference.objects.filter(_holder_gone(live_session_ids, live_agent_ids)).delete()
    for reason, condition in (("ttl", lambda model: Q(expires_at__lte=timezone.now())), ("orphaned", _unreferenced)):
        for model, deferred in ((Credential, "value"), (StoredFile, "content")):
            while True:
                with transaction.atomic():
                    batch = list(
                        model.objects.filter(condition(model)).defer(deferred).order_by("pk")
                        .select_for_update(skip_locked=True)[:batch_size]
                    )
                    if not batch:
                        break
                    holders = _holders(model, batch)
                    AuditEvent.objects.bulk_create(
                        [audit_event(row, AuditEvent.Action.EXPIRE, Actor.system("purge_expired_credentials"), reason,
                                     **holders.get(row.pk, {}))
                         for row in batch]
                    )
                    model.objects.filter(pk__in=[row.pk for row in batch]).delete()
                counts["credentials" if model is Credential else "files"] += len(batch)
                if len(batch) < batch_size:
                    break
    if counts["credentials"] or counts["files"]:
        logger.info("purged %d credential(s) and %d file(s)", counts["credentials"], counts["files"])
    return counts
