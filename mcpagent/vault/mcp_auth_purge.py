"""Purge of MCP authorizations an end user started and never finished.

Preparing an authorization (mcp_auth_flow) keeps a `pending` connection row holding our registration with the
server's authorization server; a user who never comes back would leave it forever. Such a row is deleted once it
has been idle for MCP_AUTH_PENDING_TTL_HOURS: not changed, and no link made from it, within that time, and no link
of it still usable. A row that ever held tokens (active, needs_reauth) is never touched here."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from mcpagent.vault.audit import Actor
from mcpagent.vault.models import AuditEvent, McpAuthConnection, OAuthState

logger = logging.getLogger("mcpagent.vault")
PURGE_ACTOR = "purge_pending_mcp_authorizations"


def _idle_pending(cutoff) -> QuerySet:
    """Pending rows without tokens, unchanged since `cutoff`, with no link made since then nor one still usable."""
    recent_link = OAuthState.objects.filter(mcp_connection=OuterRef("pk")).filter(
        Q(created_at__gt=cutoff) | Q(used_at__isnull=True, expires_at__gt=timezone.now()))
    return McpAuthConnection.objects.filter(status=McpAuthConnection.Status.PENDING, token__isnull=True,
                                            updated_at__lte=cutoff).filter(~Exists(recent_link))


def _expire_event(connection: McpAuthConnection, actor: Actor) -> AuditEvent:
    return AuditEvent(
        actor_type=actor.type, actor_id=actor.id, actor_label=actor.label, action=AuditEvent.Action.EXPIRE,
        object_type=AuditEvent.ObjectType.OAUTH, object_id=str(connection.pk), server=connection.server_url[:200],
        client_id=connection.client_id, end_user=connection.end_user, reason="pending_ttl",
        metadata={"server_url": connection.server_url[:500], "status": connection.status})


def mcp_authorizations_purge_pending(*, batch_size: int = 500) -> dict[str, int]:
    """Delete pending MCP authorizations idle for MCP_AUTH_PENDING_TTL_HOURS (their links go with them), each
    audited as `expire` (reason "pending_ttl"). Batches of `batch_size`, each its own transaction; rows another
    transaction holds are left for the next run. Returns counts only."""
    cutoff = timezone.now() - timedelta(hours=settings.MCP_AUTH_PENDING_TTL_HOURS)
    actor = Actor.system(PURGE_ACTOR)
    purged = 0
    while True:
        with transaction.atomic():
            batch = list(_idle_pending(cutoff).only("pk", "client_id", "end_user", "server_url", "status")
                         .order_by("pk").select_for_update(skip_locked=True)[:batch_size])
            if not batch:
                break
            AuditEvent.objects.bulk_create([_expire_event(row, actor) for row in batch])
            McpAuthConnection.objects.filter(pk__in=[row.pk for row in batch]).delete()
        purged += len(batch)
        if len(batch) < batch_size:
            break
    if purged:
        logger.info("purged %d unfinished MCP authorization(s) idle for %s h", purged,
                    settings.MCP_AUTH_PENDING_TTL_HOURS)
    return {"mcp_authorizations": purged}
