from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

import pytest

from mcpagent.models import ApiClient


def _create_key(name: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("create_api_client", name, "--quiet", stdout=out)
    return out.getvalue().strip()


def test_create_api_client_prints_a_working_key_once(db):
    key = _create_key("acme")
    client = ApiClient.objects.get(name="acme")
    assert key.startswith("mcpa_") and len(key) > 40
    assert client.key_hash != key and key not in client.key_hash
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    # An authenticated call reaches the view (404 for an unknown session, not 401).
    response = api.get("/api/sessions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404


def test_stored_hash_cannot_be_used_to_log_in(db):
    _create_key("acme")
    stored = ApiClient.objects.get(name="acme").key_hash
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {stored}")
    response = api.get("/api/sessions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_raw_key_is_nowhere_in_the_database(db):
    key = _create_key("acme")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM mcpagent_apiclient")
        rows = cursor.fetchall()
    assert rows and key not in repr(rows)


def test_revoked_key_is_refused(db):
    key = _create_key("acme")
    ApiClient.objects.filter(name="acme").update(is_active=False)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/sessions/00000000-0000-0000-0000-000000000000").status_code == 401


def test_duplicate_client_name_is_a_clear_error(db):
    _create_key("acme")
    with pytest.raises(CommandError, match="already exists"):
        _create_key("acme")
