"""Who acts on the vault (an Actor) and the audit trail: every create, read for use, update, delete, expiry and
validation writes an AuditEvent naming who, what (server and key, never a value), when and why (`reason`)."""

from dataclasses import dataclass
from typing import Any

from mcpagent.models import ApiClient
from mcpagent.vault.models import AuditEvent, Credential, StoredFile


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


def audit_event(
    obj: Credential | StoredFile, action: str, actor: ActorLike, reason: str, metadata: dict | None = None, *,
    session_id: Any = None, agent_id: Any = None,
) -> AuditEvent:
    """An unsaved event about one entry (callers bulk_create them in the transaction that changes the entries).
    `session_id` / `agent_id`: the holder it was done for (entries are shared, so they do not name one)."""
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
        end_user=obj.end_user,
        session_id=session_id,
        agent_id=agent_id,
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
