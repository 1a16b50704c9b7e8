import uuid

from django.db.models import QuerySet

from mcpagent.errors import NotFound
from mcpagent.models import ApiClient
from mcpagent.vault.files import files_collected
from mcpagent.vault.store import credentials_collected
from sessions_app.models import Conversation, Session


def session_get(*, client: ApiClient, session_id, end_user: str | None = None) -> Session:
    """The client's session; another client's or an unknown id is the same 404 (no existence oracle). With
    `end_user`, only a session of that end user ("" for none) is found: one end user never continues another's."""
    rows = Session.objects.filter(id=session_id, client=client)
    if end_user is not None:
        rows = rows.filter(end_user=end_user)
    session = rows.first() if _is_uuid(session_id) else None
    if session is None:
        raise NotFound("Session not found.", details={"session_id": str(session_id)})
    return session


def session_turns(*, session: Session) -> QuerySet[Conversation]:
    return Conversation.objects.filter(session=session).order_by("timestamp", "id")


def collected_credential_keys(*, session: Session) -> dict[str, set[str]]:
    """{server slug: {credential keys}} collected for this session and not expired (names only)."""
    return credentials_collected(session=session)


def collected_file_keys(*, session: Session) -> set[str]:
    return files_collected(session=session)


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
