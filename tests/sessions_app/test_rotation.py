"""manage.py rotate_encryption_key: A -> [B, A] -> B alone; idempotent, resumable, failures named."""

import base64
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from mcpagent import crypto
from sessions_app.credentials import credential_values_for_use, credentials_store, files_store
from mcpagent.vault.models import AuditEvent, Credential, StoredFile
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
