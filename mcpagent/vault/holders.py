"""Who may hold vault entries and for how long: owner checks, references, the entries a holder can use, lifetime.

A holder is a session or an agent of the caller's app, passed as the object itself; the vault reads only its
`pk`, `client_id` and `end_user` (and locks its row through its own model), so it never imports those apps. A
holder points to an entry through a VaultReference and never holds a copy; an entry lives as long as its
longest-lived holder needs it. A session or agent of another client is the same NotFound as an unknown one.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from mcpagent.errors import ApplicationError, NotFound
from mcpagent.models import ApiClient
from mcpagent.vault.models import Credential, VaultReference


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


def lock_entries(*, client: ApiClient, end_user: str) -> None:
    """Serialise writers on one client's and end user's entries (until the transaction ends), so two sessions
    storing the same key at once cannot both insert it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"vault:{client.pk}:{end_user}"])


def end_user_of(session: Any, agent: Any) -> str:
    """The end user the holder belongs to ("" when the client named none)."""
    holder = agent if agent is not None else session
    return str(getattr(holder, "end_user", "") or "")


def entry_field(model: type[Model]) -> str:
    """The VaultReference field that points to entries of `model`."""
    return "credential" if model is Credential else "stored_file"


def holder_fields(*, session: Any, agent: Any) -> dict:
    """The holder a store references the entry from: the agent when given, else the session."""
    return {"agent_id": agent.pk} if agent is not None else {"session_id": session.pk}


def audit_holders(*, session: Any, agent: Any) -> dict:
    """The holder ids an audit event names."""
    return {"session_id": session.pk if session is not None else None,
            "agent_id": agent.pk if agent is not None else None}


def held_by(*, session: Any = None, agent: Any = None) -> Q:
    """References of the session, of the agent, or of both."""
    condition = Q(pk__in=[])
    if agent is not None:
        condition |= Q(agent_id=agent.pk)
    if session is not None:
        condition |= Q(session_id=session.pk)
    return condition


def later(first: datetime | None, second: datetime | None) -> datetime | None:
    """The longer of two lifetimes (None: no end)."""
    return None if first is None or second is None else max(first, second)


def hold(entry: Model, *, session: Any = None, agent: Any = None, expires_at: datetime | None) -> bool:
    """Point the holder (the agent when given, else the session) at `entry` and keep the entry alive at least
    until `expires_at` (None: no end). True when the reference is new."""
    _, created = VaultReference.objects.get_or_create(**{entry_field(type(entry)): entry},
                                                     **holder_fields(session=session, agent=agent))
    lifetime = later(entry.expires_at, expires_at)
    if lifetime != entry.expires_at:
        type(entry).objects.filter(pk=entry.pk).update(expires_at=lifetime)
        entry.expires_at = lifetime
    return created


def session_expiry() -> datetime:
    return timezone.now() + timedelta(hours=settings.CREDENTIAL_TTL_HOURS)


def agent_expiry() -> datetime | None:
    days = settings.AGENT_CREDENTIAL_TTL_DAYS
    return timezone.now() + timedelta(days=days) if days else None


def live() -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())


def scope(model, *, client: ApiClient, session: Any, agent: Any) -> QuerySet:
    """Live entries the owner refers to: the agent's, the session's, or (both given) the agent's plus those of
    the session it is built from, so an agent being created can use values not yet handed to it."""
    field = entry_field(model)
    held = VaultReference.objects.filter(held_by(session=session, agent=agent), **{f"{field}__isnull": False})
    return model.objects.filter(client=client, pk__in=held.values(field)).filter(live())


def preferred(rows, agent: Any = None) -> list:
    """One entry per (server, key), the newest (an owner whose session and agent belong to different end users
    could see two); entries without a key (unnamed files) are all kept. `agent` is accepted for callers that
    still pass it."""
    chosen: dict[tuple[str, str], Any] = {}
    unkeyed = []
    for row in sorted(rows, key=lambda row: -row.updated_at.timestamp()):
        if row.key:
            chosen.setdefault((row.server, row.key), row)
        else:
            unkeyed.append(row)
    return list(chosen.values()) + unkeyed


def uuid_or_none(value) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None
