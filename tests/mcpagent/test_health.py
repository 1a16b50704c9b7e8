import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from mcpagent.celery import app

DETAILS_TOKEN = "health-details-0123456789"


@pytest.fixture
def details_api(anon_api, settings):
    """A caller that may see the details: it sends HEALTH_DETAILS_TOKEN."""
    settings.HEALTH_DETAILS_TOKEN = DETAILS_TOKEN
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {DETAILS_TOKEN}")
    return anon_api


def test_anyone_gets_the_status_alone(anon_api, api, db, settings):
    settings.HEALTH_DETAILS_TOKEN = DETAILS_TOKEN
    for caller in (anon_api, api):  # an API key is no reason to see the details
        response = caller.get("/api/health")
        assert response.status_code == 200 and response.json() == {"status": "ok"}
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer wrong-token")
    assert anon_api.get("/api/health").json() == {"status": "ok"}


def test_without_a_configured_token_no_bearer_gets_details(anon_api, db, settings):
    settings.HEALTH_DETAILS_TOKEN = ""
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer ")
    assert anon_api.get("/api/health").json() == {"status": "ok"}


def test_staff_sessions_see_the_details(client, db):
    user = get_user_model().objects.create_user("ops", password="pw-0123456789", is_staff=True)
    client.force_login(user)
    assert "checks" in client.get("/api/health").json()
    user.is_staff = False
    user.save()
    assert client.get("/api/health").json() == {"status": "ok"}


def test_health_ok_with_details(details_api, db):
    response = details_api.get("/api/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["pgvector"] == {"ok": True, "version": body["checks"]["pgvector"]["version"]}
    assert body["checks"]["pgvector"]["version"].startswith("0.")


def test_health_503_when_database_is_down(anon_api, django_db_blocker, settings):
    settings.HEALTH_DETAILS_TOKEN = DETAILS_TOKEN
    with django_db_blocker.unblock():
        connection.close()
        original = connection.settings_dict["HOST"], connection.settings_dict.get("PORT")
        connection.settings_dict["HOST"] = "/nonexistent-socket-dir"
        try:
            plain = anon_api.get("/api/health")
            response = anon_api.get("/api/health", HTTP_AUTHORIZATION=f"Bearer {DETAILS_TOKEN}")
        finally:
            connection.close()
            connection.settings_dict["HOST"], connection.settings_dict["PORT"] = original
    assert plain.status_code == 503 and plain.json() == {"status": "unavailable"}
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert "nonexistent-socket-dir" in body["checks"]["database"]["error"]


def test_health_503_when_broker_configured_but_unreachable(details_api, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = details_api.get("/api/health")
    finally:
        app.conf.broker_url = old
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.worker
def test_health_reports_a_real_worker(details_api, celery_worker, settings):
    response = details_api.get("/api/health")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["workers"]["count"] >= 1
    assert response.json()["checks"]["broker"]["mode"] == "redis"


def test_schema_is_openapi3_without_auth(anon_api, db):
    response = anon_api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    import yaml

    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/health" in schema["paths"]


def test_docs_page_served(anon_api, db):
    assert anon_api.get("/api/docs/").status_code == 200
