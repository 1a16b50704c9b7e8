"""After credentials and files are stored (services and the upload endpoint), read every column of every table
with raw SQL: no plaintext value and no distinctive file byte sequence appears anywhere."""

import base64
import json
import secrets

import pytest
from django.db import connection

from sessions_app.credentials import (
    credential_values_for_use,
    credentials_extend_ttl,
    credentials_store,
    file_materialize,
    files_store,
)
from mcpagent.vault.models import AuditEvent, Credential, StoredFile
from sessions_app.models import Conversation
from tests.sessions_app.secretscan import assert_no_plaintext_in_db, fake_secrets
from tests.sessions_app.test_files import private_key_pem, service_account, upload


def _distinctive_files() -> dict[str, bytes]:
    marker = secrets.token_hex(16)
    return {
        "env": f"WEBHOOK_SIGNING_SECRET=whsec_{marker}\n".encode(),
        "pem": private_key_pem().encode(),
        "sa": json.dumps(service_account(private_key_id=secrets.token_hex(20))).encode(),
    }


def _pem_body(pem: bytes) -> bytes:
    """The key material of a PEM file: its base64 lines without the armour."""
    return b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))


def test_no_plaintext_anywhere_in_the_database(api, session_x, agent_x):
    values = fake_secrets()
    client = api.client_obj
    credentials_store(client=client, session=session_x, server="everything", values=values, actor=client, reason="chat")
    files = _distinctive_files()
    files_store(client=client, session=session_x, actor=client, reason="chat", files=[
        {"filename": "a.env", "content": base64.b64encode(files["env"]).decode(), "key": "ENV_FILE"},
        {"filename": "key.pem", "content": base64.b64encode(files["pem"]).decode(), "key": "TLS_KEY"},
    ])
    assert upload(api, session_x, "sa.json", files["sa"], key="GOOGLE_APPLICATION_CREDENTIALS").status_code == 201
    # Use, adopt, update: every path that writes rows or audit events.
    credential_values_for_use(client=client, session=session_x, server="everything", actor=client, reason="agent_create")
    credentials_extend_ttl(client=client, session=session_x, agent=agent_x, actor=client, reason="agent_create")
    with file_materialize(client=client, agent=agent_x, actor=client, reason="agent_run"):
        pass
    new_values = fake_secrets()
    credentials_store(client=client, session=session_x, server="everything",
                      values={"SLACK_BOT_TOKEN": new_values["SLACK_BOT_TOKEN"]}, actor=client, reason="chat")
    # The new Slack token replaced the one entry the session and the agent both refer to.
    assert Credential.objects.count() == len(values) and StoredFile.objects.count() == 3
    assert AuditEvent.objects.count() >= 2 * len(values) + 6

    sa = json.loads(files["sa"])
    needles: list[str | bytes] = [*values.values(), new_values["SLACK_BOT_TOKEN"]]
    needles += [files["env"], files["env"].split(b"=", 1)[1].strip(), files["pem"], _pem_body(files["pem"])[:64],
                files["sa"], sa["private_key_id"], _pem_body(sa["private_key"].encode())[:64]]
    dump = assert_no_plaintext_in_db(needles)
    # The scan did read our tables (a scan of nothing would pass too).
    assert len(dump["vault_credential"]) == len(values)
    assert len(dump["vault_storedfile"]) == 3
    assert len(dump["vault_auditevent"]) == AuditEvent.objects.count()
    assert all("gAAAAA" in row or "\\x674141414141" in row for row in dump["vault_credential"])


def test_the_scan_does_find_plaintext_when_it_is_there(api, session_x):
    """The scanner itself can fail: a value in a JSON column, in a text column and as raw bytes in bytea."""
    values = fake_secrets()
    Conversation.objects.create(session=session_x, role="user", message="hi", metadata={"leak": values["OPENAI_API_KEY"]})
    with pytest.raises(AssertionError, match="agents_app_conversation"):
        assert_no_plaintext_in_db([values["OPENAI_API_KEY"]])
    credentials_store(client=api.client_obj, session=session_x, server="s", values={"K": "v-123456"}, actor="t", reason="t")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE vault_credential SET value = %s", [values["SLACK_BOT_TOKEN"].encode()])
    with pytest.raises(AssertionError, match="vault_credential"):
        assert_no_plaintext_in_db([values["SLACK_BOT_TOKEN"]])
    Conversation.objects.create(session=session_x, role="user", message=base64.b64encode(b"xx" + values["DB_PASSWORD"].encode()).decode())
    with pytest.raises(AssertionError, match="agents_app_conversation"):
        assert_no_plaintext_in_db([values["DB_PASSWORD"]])


def test_a_session_credential_pasted_into_a_chat_message_is_stored_and_shown_masked(api, session_x, caplog):
    # No known token shape: only the vault knows this is the session's secret.
    pasted = "plain-value-" + secrets.token_hex(8)
    credentials_store(client=api.client_obj, session=session_x, server="everything", values={"API_KEY": pasted},
                      actor=api.client_obj, reason="chat")
    caplog.set_level("DEBUG")
    response = api.post("/api/chat", {"session_id": str(session_x.id), "message": f"Post to Slack, key {pasted}"},
                        format="json")
    assert response.status_code == 200, response.content
    turn = Conversation.objects.get(session=session_x, role="user")
    assert turn.message == "Post to Slack, key ***"
    shown = api.get(f"/api/sessions/{session_x.id}")
    assert "Post to Slack, key ***" in shown.content.decode()
    assert pasted.encode() not in response.content + shown.content
    assert pasted not in caplog.text
    assert_no_plaintext_in_db([pasted])
