"""Celery tasks of the vault. Tasks return counts, never values."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from mcpagent.vault.mcp_auth_purge import mcp_authorizations_purge_pending


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3)
def purge_pending_mcp_authorizations() -> dict[str, int]:
    """Beat task (hourly): delete MCP authorizations started and left unfinished for MCP_AUTH_PENDING_TTL_HOURS."""
    return mcp_authorizations_purge_pending()
