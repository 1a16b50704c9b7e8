"""Who may hold vault rows and for how long: owner checks, the rows an owner can use, their lifetime.

A holder is a session or an agent of the caller's app, passed as the object itself; the vault reads only its
`pk` and `client_id` (and locks its row through its own model), so it never imports those apps. A session or
agent of another client is the same NotFound as an unknown one.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from mcpagent.errors import ApplicationError, NotFound
from mcpagent.models import ApiClient


def check_owner(*, client: ApiClient, session: Any, agent: Any) -> None:
    if session is None and agent is None:
        raise ApplicationError("A session or an agent is required to hold credentials.", code="owner_required")
    if session is not None and session.client_id != client.pk:
        raise NotFound("Session not found.")
    if agent is not None and agent.client_id != client.pk:
        raise NotFound("Agent not found.")


def lock_owner(*, session: Any, agent: Any) -> None:
    """Serialise writers on one owner, so two concurrent stores of the same key cannot both insert."""
    holder = agent if agent is not None else session
    if holder is not None:
        type(holder).objects.select_for_update().filter(pk=holder.pk).first()


def end_user_of(session: Any, agent: Any) -> str:
    """The end user the holder belongs to ("" when the client named none)."""
    holder = agent if agent is not None else session
    return str(getattr(holder, "end_user", "") or "")


def owner_fields(*, session: Any, agent: Any) -> dict:
    """The filter that finds the rows a store replaces: the agent's own, else the session's not yet adopted."""
    if agent is not None:
        return {"agent_id": agent.pk}
    return {"session_id": session.pk, "agent_id": None}


def session_expiry() -> datetime:
    return timezone.now() + timedelta(hours=settings.CREDENTIAL_TTL_HOURS)


def agent_expiry() -> datetime | None:
    days = settings.AGENT_CREDENTIAL_TTL_DAYS
    return timezone.now() + timedelta(days=days) if days else None


def live() -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())


def scope(model, *, client: ApiClient, session: Any, agent: Any) -> QuerySet:
    """Live rows the owner can use: the agent's, the session's, or (both given) the agent's plus those of the
    session it is built from, so an agent being created can use values not yet handed to it."""
    qs = model.objects.filter(client=client).filter(live())
    if agent is not None and session is not None:
        return qs.filter(Q(agent_id=agent.pk) | Q(session_id=session.pk))
    if agent is not None:
        return qs.filter(agent_id=agent.pk)
    return qs.filter(session_id=session.pk)


def preferred(rows, agent: Any = None) -> list:
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


def uuid_or_none(value) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None
