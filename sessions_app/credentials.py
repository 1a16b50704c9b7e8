"""The session's view of the credentials vault (mcpagent.vault).

Values, files and their audit trail live in the vault; this module binds what only the session side knows: the
catalogue's rules for values and files (agents_app.credential_rules), which server and key a session file may
name (the session's plan), which agents still hold a session's values, and which holders still exist when the
purge looks for orphans. Everything else is the vault's own call, re-exported so callers keep one import.
"""

from django.db import transaction

from agents_app.credential_rules import (
    CATALOGUE_RULES, active_server_exists, catalogue_requirements, file_requirement_keys,
)
from agents_app.master.plan import Plan
from agents_app.models import Agent
from mcpagent.models import ApiClient
from mcpagent.redaction import Redactor
from mcpagent.vault import expiry, filecheck, store
from mcpagent.vault import files as vault_files
from mcpagent.vault.audit import Actor, ActorLike, as_actor, audit_record
from mcpagent.vault.files import (
    FilesStoreResult, file_delete, file_ids_for_use, file_metadata, files_collected, files_list,
)
from mcpagent.vault.materialize import file_materialize, materialized_files_sweep
from mcpagent.vault.store import (
    StoreResult, credential_delete, credential_masked, credential_values_for_use, credentials_collected,
    credentials_extend_ttl, credentials_for_agent_delete, credentials_masked, credentials_missing,
    credentials_record_validation,
)
from sessions_app.models import Session

__all__ = [
    "Actor", "ActorLike", "FilesStoreResult", "StoreResult", "as_actor", "audit_record", "catalogue_requirements",
    "credential_delete", "credential_masked", "credential_values_for_use", "credentials_collected",
    "credentials_extend_ttl", "credentials_for_agent_delete", "credentials_for_session_delete", "credentials_masked",
    "credentials_missing", "credentials_purge_expired", "credentials_record_validation", "credentials_store",
    "file_delete", "file_ids_for_use", "file_materialize", "file_metadata", "files_collected", "files_list",
    "files_store", "materialized_files_sweep",
]


def credentials_store(*, client: ApiClient, session: Session | None = None, agent=None, server: str,
                      values: dict[str, str], requirements: list[dict] | None = None, actor: ActorLike,
                      reason: str) -> StoreResult:
    """mcpagent.vault.store.credentials_store with the catalogue's requirements and curated formats."""
    return store.credentials_store(client=client, session=session, agent=agent, server=server, values=values,
                                   requirements=requirements, actor=actor, reason=reason, rules=CATALOGUE_RULES)


def files_store(*, client: ApiClient, session: Session | None = None, agent=None, files: list[dict],
                actor: ActorLike, reason: str) -> FilesStoreResult:
    """mcpagent.vault.files.files_store with the catalogue's file recipes; a session's file must name a server
    and key that exist (_check_file_target)."""
    target = (lambda server, key: _check_file_target(session=session, server=server, key=key)) if session else None
    return vault_files.files_store(client=client, session=session, agent=agent, files=files, actor=actor,
                                   reason=reason, rules=CATALOGUE_RULES, file_target=target)


@transaction.atomic
def credentials_for_session_delete(*, client: ApiClient | None = None, session: Session, actor: ActorLike,
                                   reason: str) -> dict[str, int]:
    """Drop the session's references, and those of its agents that failed (no one can retry them once the
    session is gone), then delete the credentials and files no one refers to any more. Values a ready agent, or
    one still being validated, refers to stay."""
    failed = Agent.objects.filter(session=session, status=Agent.Status.FAILED).values_list("pk", flat=True)
    return store.credentials_for_session_delete(client=client, session=session, actor=actor, reason=reason,
                                                released_agent_ids=list(failed))


def credentials_purge_expired(*, batch_size: int = 500) -> dict[str, int]:
    """Purge expired vault rows and those whose session and agent are both gone."""
    return expiry.credentials_purge_expired(batch_size=batch_size, live_session_ids=Session.objects.values("pk"),
                                            live_agent_ids=Agent.objects.values("pk"))


def _check_file_target(*, session: Session, server: str, key: str) -> str:
    """The catalogue server a session file is for (its slug; "" for none). `server` must be one of the session's
    planned servers or an active catalogue server, and `key` one of that server's file requirements; a key sent
    without a server must be a file requirement of a planned server once the session has a plan (before that,
    any safe key: it is matched when the plan is made). A file for nothing that exists is never used."""
    plan = Plan.from_dict(session.context["plan"]) if session.context.get("plan") else None
    planned = plan.server_slugs() if plan else []
    if server:
        slug = next((planned_slug for planned_slug in planned if planned_slug.lower() == server.lower()), None)
        if slug is None and active_server_exists(server):
            slug = server
        if slug is None:
            raise filecheck.FileRejected(
                "unknown_server", f"server '{server}' is neither a server of this session nor in the catalogue.",
                400, {"field": "server", "session_servers": planned})
        if key and key not in (keys := file_requirement_keys(slug)):
            raise filecheck.FileRejected(
                "unknown_file_key", f"key '{key}' is not a file {slug} asks for.", 400,
                {"field": "key", "server": slug, "file_keys": keys})
        return slug
    if plan is not None:
        keys = sorted({k for slug in planned for k in file_requirement_keys(slug)})
        if key not in keys:
            raise filecheck.FileRejected(
                "unknown_file_key", f"key '{key}' is not a file any server of this session asks for.", 400,
                {"field": "key", "file_keys": keys})
    return ""


def credentials_redactor(session: Session) -> Redactor:
    """A Redactor of every value the vault holds for the session: one pasted into a chat message is masked
    before the message is stored or planned from."""
    return Redactor(store.credential_values_to_mask(client=session.client, session=session))
