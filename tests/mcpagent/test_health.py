import pytest
from django.db import connection

from mcpagent.celery import app


def test_health_ok_without_auth(anon_api, db):
    response = anon_api.get("/api/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["pgvector"] == {"ok": True, "version": body["checks"]["pgvector"]["version"]}
    assert body["checks"]["pgvector"]["version"].startswith("0.")


def test_health_503_when_database_is_down(anon_api, django_db_blocker):
    with django_db_blocker.unblock():
        connection.close()
        original = connection.settings_dict["HOST"], connection.settings_dict.get("PORT")
        connection.settings_dict["HOST"] = "/nonexistent-socket-dir"
        try:
            response = anon_api.get("/api/health")
        finally:
            connection.close()
            connection.settings_dict["HOST"], connection.settings_dict["PORT"] = original
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert "nonexistent-socket-dir" in body["checks"]["database"]["error"]


def test_health_503_when_broker_configured_but_unreachable(anon_api, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = anon_api.get("/api/health")
    finally:
        app.conf.broker_url = old
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.worker
def test_health_reports_a_real_worker(anon_api, celery_worker, settings):
    response = anon_api.get("/api/health")
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
