"""Client X cannot read, use, list, overwrite or delete client Y's credentials or files: the services raise
NotFound (the same as for an unknown id) and the upload endpoint answers 404 in the error shape."""

import base64
import uuid

import pytest

from agents_app.models import Agent
from mcpagent.errors import NotFound
from sessions_app.credentials import (
    credential_delete,
    credential_values_for_use,
    credentials_extend_ttl,
    credentials_for_agent_delete,
    credentials_for_session_delete,
    credentials_masked,
    credentials_missing,
    credentials_store,
    file_delete,
    file_materialize,
    files_list,
    files_store,
)
from mcpagent.vault.models import AuditEvent, Credential, StoredFile
from tests.sessions_app.secretscan import fake_secrets
from tests.sessions_app.test_files import upload


@pytest.fixture
def y_data(other_api, session_y):
    """Client Y's session with a credential and a file, and Y's agent."""
    y = other_api.client_obj
    value = fake_secrets()["GITHUB_PERSONAL_ACCESS_TOKEN"]
    credentials_store(client=y, session=session_y, server="github", values={"GITHUB_PERSONAL_ACCESS_TOKEN": value},
                      actor=y, reason="setup")
    files_store(client=y, session=session_y, actor=y, reason="setup",
                files=[{"filename": "y.env", "content": base64.b64encode(b"Y_SECRET=1\n").decode(), "key": "Y_FILE"}])
    agent = Agent.objects.create(client=y, session=session_y, name="agent-y")
    return {
        "value": value, "agent": agent,
        "credential": Credential.objects.defer("value").get(client=y),
        "file": StoredFile.objects.defer("content").get(client=y),
    }


def _state() -> tuple:
    return (
        sorted((str(c.pk), c.value, sorted(map(str, c.references.values_list("session_id", "agent_id"))))
               for c in Credential.objects.all()),
        sorted((str(f.pk), f.content) for f in StoredFile.objects.all()),
    )


def test_services_refuse_another_clients_session_agent_and_ids(api, session_x, session_y, y_data):
    x = api.client_obj
    before = _state()
    audit_before = AuditEvent.objects.count()
    attempts = {
        "use via session": lambda: credential_values_for_use(client=x, session=session_y, server="github", actor=x, reason="t"),
        "use via agent": lambda: credential_values_for_use(client=x, agent=y_data["agent"], server="github", actor=x, reason="t"),
        "use via own session + their agent": lambda: credential_values_for_use(
            client=x, session=session_x, agent=y_data["agent"], server="github", actor=x, reason="t"),
        "list": lambda: credentials_masked(client=x, session=session_y),
        "missing": lambda: credentials_missing(client=x, session=session_y, requirements=[]),
        "overwrite": lambda: credentials_store(client=x, session=session_y, server="github",
                                               values={"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_" + "a" * 36}, actor=x, reason="t"),
        "delete by id": lambda: credential_delete(client=x, credential_id=y_data["credential"].pk, actor=x, reason="t"),
        "delete session's": lambda: credentials_for_session_delete(client=x, session=session_y, actor=x, reason="t"),
        "delete agent's": lambda: credentials_for_agent_delete(client=x, agent=y_data["agent"], actor=x, reason="t"),
        "adopt into own agent": lambda: credentials_extend_ttl(
            client=x, session=session_y, agent=Agent.objects.create(client=x, name="x-agent"), actor=x, reason="t"),
        "list files": lambda: files_list(client=x, session=session_y),
        "store file": lambda: files_store(client=x, session=session_y, actor=x, reason="t",
                                          files=[{"filename": "a.txt", "content": base64.b64encode(b"a=1").decode()}]),
        "delete file": lambda: file_delete(client=x, file_id=y_data["file"].pk, actor=x, reason="t"),
        "materialize by session": lambda: file_materialize(client=x, session=session_y, actor=x, reason="t").__enter__(),
        "materialize by id": lambda: file_materialize(
            client=x, session=session_x, file_ids=[y_data["file"].pk], actor=x, reason="t").__enter__(),
    }
    for name, attempt in attempts.items():
        with pytest.raises(NotFound):
            attempt()
            pytest.fail(f"{name} did not raise NotFound")
    assert _state() == before
    assert AuditEvent.objects.count() == audit_before
    # An unknown id is the same answer as another client's id (no existence oracle).
    with pytest.raises(NotFound) as unknown:
        credential_delete(client=x, credential_id=uuid.uuid4(), actor=x, reason="t")
    with pytest.raises(NotFound) as theirs:
        credential_delete(client=x, credential_id=y_data["credential"].pk, actor=x, reason="t")
    assert (unknown.value.message, unknown.value.status) == (theirs.value.message, theirs.value.status)


def test_the_owner_still_can(other_api, session_y, y_data):
    y = other_api.client_obj
    assert credential_values_for_use(client=y, session=session_y, server="github", actor=y, reason="t") == {
        "GITHUB_PERSONAL_ACCESS_TOKEN": y_data["value"]
    }
    with file_materialize(client=y, session=session_y, actor=y, reason="t") as paths:
        assert paths["Y_FILE"].read_bytes() == b"Y_SECRET=1\n"


def test_upload_into_another_clients_session_is_404(api, other_api, session_y, y_data):
    before = StoredFile.objects.count()
    response = upload(api, session_y, "x.json", b'{"a": 1}')
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Session not found.",
                                         "details": {"session_id": str(session_y.pk)}}}
    unknown = uuid.uuid4()
    response = api.post(f"/api/sessions/{unknown}/files", data=b"", content_type="multipart/form-data; boundary=x")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert StoredFile.objects.count() == before
    # Without a key at all: 401 in the same shape.
    response = upload(other_api.__class__(), session_y, "x.json", b'{"a": 1}')
    assert response.status_code == 401 and "error" in response.json()
    # The owner can.
    assert upload(other_api, session_y, "y.json", b'{"a": 1}').status_code == 201
