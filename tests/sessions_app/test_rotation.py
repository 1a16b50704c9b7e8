"""manage.py rotate_encryption_key: A -> [B, A] -> B alone; idempotent, resumable, failures named; every table an
app encrypts into is covered (agent runs' sealed messages, OAuth tokens, ...)."""

import base64
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from agents_app.models import AgentRun, AgentTrigger
from mcpagent import crypto, encrypted_tables
from mcpagent.vault.models import (AuditEvent, Credential, McpAuthConnection, OAuthApp, OAuthConnection, OAuthState,
                                   StoredFile)
from sessions_app.credentials import credential_values_for_use, credentials_store, files_store
from tests.sessions_app.secretscan import fake_secrets

KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))


def _rotate(batch_size: int = 200) -> str:
    out = StringIO()
    call_command("rotate_encryption_key", batch_size=batch_size, stdout=out)
    return out.getvalue()


def _populate(api, session) -> tuple[dict, bytes]:
    values = fake_secrets()
    credentials_store(client=api.client_obj, session=session, server="svc", values=values, actor=api.client_obj,
                      reason="test")
    content = b"PRIVATE_TOKEN=" + Fernet.generate_key() + b"\n"
    files_store(client=api.client_obj, session=session, actor=api.client_obj, reason="test",
                files=[{"filename": "a.env", "content": base64.b64encode(content).decode(), "key": "ENV_FILE"}])
    return values, content


def _read_all(api, session) -> tuple[dict, list[bytes]]:
    values = credential_values_for_use(client=api.client_obj, session=session, server="svc", actor="test", reason="t")
    return values, [f.content for f in StoredFile.objects.all()]


def test_rotate_a_to_b(api, session_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    values, content = _populate(api, session_x)
    old_fingerprint = StoredFile.objects.get().fingerprint

    settings.ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    report = _rotate(batch_size=3)
    assert f"credentials: {len(values)} re-encrypted, 0 already current, 0 failed" in report
    assert "files: 1 re-encrypted, 0 already current, 0 failed" in report
    report = _rotate()
    assert f"credentials: 0 re-encrypted, {len(values)} already current, 0 failed" in report
    assert "files: 0 re-encrypted, 1 already current, 0 failed" in report

    settings.ENCRYPTION_KEY = KEY_B
    assert _read_all(api, session_x) == (values, [content])
    stored = StoredFile.objects.get()
    assert stored.fingerprint != old_fingerprint and stored.fingerprint == crypto.fingerprint(content)

    settings.ENCRYPTION_KEY = KEY_A
    with pytest.raises(crypto.DecryptionError, match="Cannot decrypt Credential.value with any configured key"):
        list(Credential.objects.all())
    with pytest.raises(crypto.DecryptionError, match="Cannot decrypt StoredFile.content"):
        list(StoredFile.objects.all())

    summaries = AuditEvent.objects.filter(action="rotate", object_type="encryption_key").order_by("at")
    assert [s.metadata["credentials"]["re_encrypted"] for s in summaries] == [len(values), 0]
    assert summaries[0].metadata["files"] == {"re_encrypted": 1, "already_current": 0, "failed": 0}
    assert summaries[0].metadata["keys_configured"] == 2 and summaries[0].actor_type == "system"


def test_an_interrupted_rotation_resumes_and_loses_nothing(api, session_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    values, content = _populate(api, session_x)
    settings.ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    # What a run killed after its first committed batch leaves behind: some rows under B, the rest under A.
    done = list(Credential.objects.order_by("pk").values_list("pk", flat=True)[:3])
    with connection.cursor() as cursor:
        for pk in done:
            cursor.execute("SELECT value FROM vault_credential WHERE id = %s", [pk])
            token = crypto.rotate(bytes(cursor.fetchone()[0]))
            cursor.execute("UPDATE vault_credential SET value = %s WHERE id = %s", [bytes(token), pk])
    report = _rotate(batch_size=2)
    assert f"credentials: {len(values) - 3} re-encrypted, 3 already current, 0 failed" in report
    settings.ENCRYPTION_KEY = KEY_B
    assert _read_all(api, session_x) == (values, [content])


def test_rows_under_an_unlisted_key_are_reported_and_left_alone(api, session_x, settings):
    settings.ENCRYPTION_KEY = KEY_C
    credentials_store(client=api.client_obj, session=session_x, server="lost", values={"LOST_TOKEN": "under-c-1234"},
                      actor="test", reason="t")
    lost = Credential.objects.defer("value").get()
    settings.ENCRYPTION_KEY = KEY_A
    values, _ = _populate(api, session_x)
    settings.ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    with pytest.raises(CommandError) as excinfo:
        _rotate()
    message = str(excinfo.value)
    assert "1 secret(s) could not be decrypted" in message and str(lost.pk) in message
    assert "ENCRYPTION_KEY_FALLBACKS" in message
    # Everything else was rotated; adding the missing key as a fallback lets a rerun finish the job.
    settings.ENCRYPTION_KEY_FALLBACKS = [KEY_C]
    report = _rotate()
    assert f"credentials: 1 re-encrypted, {len(values)} already current, 0 failed" in report
    settings.ENCRYPTION_KEY, settings.ENCRYPTION_KEY_FALLBACKS = KEY_B, []
    assert Credential.objects.get(pk=lost.pk).value == "under-c-1234"


def test_a_sealed_run_message_opens_with_only_the_new_key_after_rotation(agent_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    sent = "use my key plain-value-7d1e9c42b8a6 please"
    queued = AgentRun.objects.create(agent=agent_x, message="use my key *** please", model="passthrough",
                                     message_sealed=sent.encode())
    # A finished run's sealed copy is emptied: nothing to rotate, not counted.
    AgentRun.objects.create(agent=agent_x, message="done", model="passthrough", status=AgentRun.Status.SUCCEEDED)

    settings.ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    assert "agent_runs: 1 re-encrypted, 0 already current, 0 failed" in _rotate()

    settings.ENCRYPTION_KEY = KEY_B
    assert bytes(AgentRun.objects.get(pk=queued.pk).message_sealed).decode() == sent
    settings.ENCRYPTION_KEY = KEY_A
    with pytest.raises(crypto.DecryptionError, match="AgentRun.message_sealed"):
        AgentRun.objects.get(pk=queued.pk)


def test_every_registered_table_is_rotated(api, agent_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    client = api.client_obj
    Credential.objects.create(client=client, server="srv", key="K", value="credential-value", hint="set")
    StoredFile.objects.create(client=client, filename="f.txt", content_type="text/plain", size=4, fingerprint="x",
                              content=b"file")
    OAuthApp.objects.create(provider="google", client_id="id", client_secret="app-secret")
    OAuthConnection.objects.create(client=client, provider="google", token={"access_token": "oauth-at"}, hint="h")
    remote = McpAuthConnection.objects.create(client=client, server_url="https://mcp.example/mcp", issuer="iss",
                                              registration={"client_id": "reg"}, token={"access_token": "mcp-at"})
    OAuthState.objects.create(state_hash="s" * 64, client=client, provider="google", code_verifier="verifier",
                              redirect_uri="https://cb.example", expires_at=timezone.now() + timedelta(minutes=5))
    AgentRun.objects.create(agent=agent_x, message="***", model="passthrough", message_sealed=b"sealed message")
    AgentTrigger.objects.create(agent=agent_x, token_hash="t" * 64, signing_secret=b"signing secret")
    labels = [table.label for table in encrypted_tables.encrypted_tables()]

    settings.ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    report = _rotate(batch_size=1)
    for label in labels:
        assert f"{label}: 1 re-encrypted, 0 already current, 0 failed" in report
    assert AuditEvent.objects.get(action="rotate", object_type="encryption_key").metadata["mcp_auth_connections"] \
        == {"re_encrypted": 1, "already_current": 0, "failed": 0}

    settings.ENCRYPTION_KEY = KEY_B
    for table in encrypted_tables.encrypted_tables():
        row = table.model._base_manager.get()
        for name in table.fields:
            assert getattr(row, name) is not None, f"{table.label}.{name}"
    assert McpAuthConnection.objects.get(pk=remote.pk).token == {"access_token": "mcp-at"}
    assert bytes(AgentTrigger.objects.get().signing_secret) == b"signing secret"


def test_every_encrypted_field_is_registered_for_rotation():
    # Found by type: every EncryptedJSONField / EncryptedBytesField of an installed model.
    assert encrypted_tables.unregistered_encrypted_fields() == []
    registered = {f"{t.model._meta.label}.{name}" for t in encrypted_tables.encrypted_tables() for name in t.fields}
    assert {"agents_app.AgentRun.message_sealed", "agents_app.AgentTrigger.signing_secret",
            "vault.McpAuthConnection.registration", "vault.OAuthState.code_verifier"} <= registered


def test_rotation_refuses_to_run_while_an_encrypted_field_is_not_registered(api, settings, monkeypatch):
    settings.ENCRYPTION_KEY = KEY_A
    Credential.objects.create(client=api.client_obj, server="srv", key="K", value="under-a-1234", hint="set")
    monkeypatch.delitem(encrypted_tables._tables, "agent_runs")
    settings.ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    with pytest.raises(CommandError, match=r"Not rotating: agents_app\.AgentRun\.message_sealed"):
        _rotate()
    assert not any(crypto.is_current(bytes(token)) for token in _raw_values())


def _raw_values() -> list[bytes]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM vault_credential")
        return [bytes(row[0]) for row in cursor.fetchall()]
