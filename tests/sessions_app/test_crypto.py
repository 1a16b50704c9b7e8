"""mcpagent.crypto: the encrypted fields, key handling (list, fallbacks, local dev key file, required key)."""

import json
import logging
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core import serializers
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.forms.models import model_to_dict

from mcpagent import crypto
from mcpagent.env import environ_for_own_process
from mcpagent.vault.models import Credential, StoredFile

ROOT = Path(__file__).resolve().parents[2]
KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))


def _credential(client, session, value, key="K") -> Credential:
    return Credential.objects.create(client=client, server="srv", key=key, value=value, hint="set")


def _raw_token(model, pk) -> bytes:
    with connection.cursor() as cursor:
        field = "value" if model is Credential else "content"
        cursor.execute(f"SELECT {field} FROM {model._meta.db_table} WHERE id = %s", [pk])
        return bytes(cursor.fetchone()[0])


@pytest.mark.parametrize(
    "value",
    ["xoxb-1", "", "ünïcødé ✓", 0, 42, -7, 3.5, True, False, None, [1, "a", None], {"a": {"b": [True, 2.5]}}],
)
def test_json_types_survive_the_database(api, session_x, settings, value):
    settings.ENCRYPTION_KEY = KEY_A
    row = _credential(api.client_obj, session_x, value)
    loaded = Credential.objects.get(pk=row.pk).value
    assert loaded == value and type(loaded) is type(value)
    token = _raw_token(Credential, row.pk)
    assert token.startswith(b"gAAAAA")  # a Fernet token under the configured key, holding the JSON
    assert json.loads(Fernet(KEY_A.encode()).decrypt(token)) == value


def test_bytes_field_keeps_bytes(api, session_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    data = bytes(range(256)) * 3
    row = StoredFile.objects.create(
        client=api.client_obj, filename="f.txt", content_type="text/plain", size=len(data),
        fingerprint="x", content=data,
    )
    assert StoredFile.objects.get(pk=row.pk).content == data
    assert data not in _raw_token(StoredFile, row.pk)


def test_newest_key_encrypts_and_any_listed_key_decrypts(api, session_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    row = _credential(api.client_obj, session_x, "under-a")
    settings.ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    assert Credential.objects.get(pk=row.pk).value == "under-a"
    newer = _credential(api.client_obj, session_x, "under-b", key="K2")
    assert Fernet(KEY_B.encode()).decrypt(_raw_token(Credential, newer.pk)) == b'"under-b"'
    # Fallbacks count as listed keys too.
    settings.ENCRYPTION_KEY, settings.ENCRYPTION_KEY_FALLBACKS = KEY_C, [KEY_B, KEY_A]
    assert Credential.objects.get(pk=row.pk).value == "under-a"
    assert Credential.objects.get(pk=newer.pk).value == "under-b"


def test_wrong_key_raises_a_clear_error_not_garbage(api, session_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    row = _credential(api.client_obj, session_x, "secret-value-123")
    settings.ENCRYPTION_KEY = KEY_B
    with pytest.raises(crypto.DecryptionError) as excinfo:
        Credential.objects.get(pk=row.pk)
    message = str(excinfo.value)
    assert "Credential.value" in message and "ENCRYPTION_KEY" in message
    assert "secret-value-123" not in message and "gAAAAA" not in message
    # Listing names and hints still works: the value column is not read.
    assert list(Credential.objects.filter(pk=row.pk).defer("value").values_list("key", flat=True)) == ["K"]


def test_invalid_key_is_refused_by_position_without_echoing_it(settings):
    settings.ENCRYPTION_KEY = f"{KEY_A},not-a-fernet-key-but-a-secret"
    with pytest.raises(ImproperlyConfigured) as excinfo:
        crypto.encrypt_bytes(b"x")
    assert "#2" in str(excinfo.value) and "not-a-fernet-key" not in str(excinfo.value)


def test_value_never_in_repr_str_or_generic_introspection(api, session_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    row = _credential(api.client_obj, session_x, "xoxb-very-secret-value-0001")
    for text in (repr(row), str(row), repr(model_to_dict(row)), serializers.serialize("json", [row])):
        assert "very-secret" not in text
    assert set(Credential._meta.get_field("value").value_from_object(row)) == {"$fernet"}


def test_dumpdata_loaddata_round_trip_keeps_ciphertext_only(api, session_x, settings):
    settings.ENCRYPTION_KEY = KEY_A
    row = _credential(api.client_obj, session_x, {"token": "xoxb-round-trip-secret"})
    dumped = serializers.serialize("json", [row])
    assert "round-trip-secret" not in dumped
    pk = row.pk
    row.delete()
    for obj in serializers.deserialize("json", dumped):
        obj.save()
    assert Credential.objects.get(pk=pk).value == {"token": "xoxb-round-trip-secret"}


def test_rotate_and_is_current_helpers(settings):
    settings.ENCRYPTION_KEY = KEY_A
    token = crypto.encrypt_bytes(b"payload")
    settings.ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    assert not crypto.is_current(token)
    rotated = crypto.rotate(token)
    assert crypto.is_current(rotated) and crypto.decrypt_bytes(rotated) == b"payload"
    settings.ENCRYPTION_KEY = KEY_C
    with pytest.raises(crypto.DecryptionError):
        crypto.rotate(token)


def test_fingerprint_is_keyed(settings):
    settings.ENCRYPTION_KEY = KEY_A
    first = crypto.fingerprint(b"PASSWORD=hunter2\n")
    assert first == crypto.fingerprint(b"PASSWORD=hunter2\n")
    settings.ENCRYPTION_KEY = KEY_B
    assert crypto.fingerprint(b"PASSWORD=hunter2\n") != first
    import hashlib

    assert first not in hashlib.sha256(b"PASSWORD=hunter2\n").hexdigest()


def test_without_a_key_a_private_local_key_file_is_created_once_and_reused(settings, tmp_path, caplog):
    settings.ENCRYPTION_KEY, settings.ENCRYPTION_KEY_FALLBACKS = "", []
    settings.MCPAGENT_REQUIRE_SECRETS = False
    settings.DATA_DIR = tmp_path / "data"
    crypto._local_key.cache_clear()
    with caplog.at_level(logging.WARNING, logger="mcpagent.crypto"):
        token = crypto.encrypt_bytes(b"dev secret")
    key_file = tmp_path / "data" / crypto.KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any("ENCRYPTION_KEY is not set" in r.getMessage() for r in caplog.records)
    key = key_file.read_text().strip()
    assert Fernet(key.encode()).decrypt(token) == b"dev secret"
    crypto._local_key.cache_clear()  # a new process reads the same file
    assert crypto.decrypt_bytes(token) == b"dev secret"
    assert key_file.read_text().strip() == key
    assert not [p for p in key_file.parent.iterdir() if p.name != crypto.KEY_FILE_NAME]  # no temp file left
    crypto._local_key.cache_clear()


def test_required_secrets_without_a_key_refuses_in_process(settings):
    settings.ENCRYPTION_KEY, settings.ENCRYPTION_KEY_FALLBACKS = "", []
    settings.MCPAGENT_REQUIRE_SECRETS = True
    with pytest.raises(ImproperlyConfigured, match="ENCRYPTION_KEY must be set"):
        crypto.encrypt_bytes(b"x")


def test_required_secrets_without_a_key_refuses_to_start():
    env = environ_for_own_process()
    for name in ("ENCRYPTION_KEY", "ENCRYPTION_KEY_FALLBACKS"):
        env.pop(name, None)
    env.update(MCPAGENT_REQUIRE_SECRETS="1", SECRET_KEY="x" * 50, DJANGO_SETTINGS_MODULE="mcpagent.settings")
    code = "import django; django.setup()"
    refused = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "ImproperlyConfigured: ENCRYPTION_KEY must be set when MCPAGENT_REQUIRE_SECRETS=1" in refused.stderr
    env["ENCRYPTION_KEY"] = KEY_A
    started = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr[-2000:]
