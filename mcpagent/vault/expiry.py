"""Purge of expired vault rows, and of rows no live holder refers to any more."""

import logging

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from mcpagent.vault.audit import Actor, audit_event
from mcpagent.vault.models import AuditEvent, Credential, StoredFile

logger = logging.getLogger("mcpagent.vault")


def _orphaned(live_session_ids: QuerySet | None, live_agent_ids: QuerySet | None) -> Q:
    """Rows whose session and agent are both gone (or were never set). Holders are plain ids, so the caller
    passes the ids that still exist (querysets of pks, evaluated in the database)."""
    no_session = Q(session_id__isnull=True)
    no_agent = Q(agent_id__isnull=True)
    if live_session_ids is not None:
        no_session |= ~Q(session_id__in=live_session_ids)
    if live_agent_ids is not None:
        no_agent |= ~Q(agent_id__in=live_agent_ids)
    return no_session & no_agent


def credentials_purge_expired(*, batch_size: int = 500, live_session_ids: QuerySet | None = None,
                              live_agent_ids: QuerySet | None = None) -> dict[str, int]:
    """Delete expired credentials and files, and those whose session and agent are both gone; audit each as
    `expire` (reason "ttl" or "orphaned"). Batches of `batch_size`, each its own transaction; rows another
    transaction holds are left for the next run. Returns counts only."""
    counts = {"credentials": 0, "files": 0}
    for reason, condition in (
        ("ttl", Q(expires_at__lte=timezone.now())),
        ("orphaned", _orphaned(live_session_ids, live_agent_ids)),
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
                        [audit_event(row, AuditEvent.Action.EXPIRE, Actor.system("purge_expired_credentials"), reason)
                         for row in batch]
                    )
                    model.objects.filter(pk__in=[row.pk for row in batch]).delete()
                counts["credentials" if model is Credential else "files"] += len(batch)
                if len(batch) < batch_size:
                    break
    if counts["credentials"] or counts["files"]:
        logger.info("purged %d credential(s) and %d file(s)", counts["credentials"], counts["files"])
    return counts
