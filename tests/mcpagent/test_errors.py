import json

import pytest


def _assert_error_shape(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_401_without_key_in_error_shape(anon_api, db):
    error = _assert_error_shape(anon_api.get("/api/sessions/00000000-0000-0000-0000-000000000000"), 401)
    assert error["code"] == "not_authenticated"


def test_401_with_wrong_scheme(anon_api, db):
    anon_api.credentials(HTTP_AUTHORIZATION="Token abc")
    _assert_error_shape(anon_api.post("/api/chat", {}, format="json"), 401, "authentication_failed")


def test_404_unknown_api_url_is_json(api):
    _assert_error_shape(api.get("/api/no-such-endpoint"), 404, "not_found")


def test_405_wrong_method(api):
    error = _assert_error_shape(api.delete("/api/health"), 405)
    assert error["code"] == "method_not_allowed"


def test_400_malformed_json(api):
    response = api.generic("POST", "/api/chat", "{not json", content_type="application/json")
    _assert_error_shape(response, 400, "parse_error")


@pytest.mark.urls("tests.mcpagent.urls_with_faults")
def test_403_in_error_shape(api):
    _assert_error_shape(api.get("/api/test-forbidden"), 403, "permission_denied")


@pytest.mark.urls("tests.mcpagent.urls_with_faults")
def test_500_has_no_trace_or_detail(api, caplog):
    error = _assert_error_shape(api.get("/api/test-crash"), 500, "server_error")
    assert "boom" not in json.dumps(error) and "Traceback" not in json.dumps(error)
    assert any("unhandled error" in record.getMessage() for record in caplog.records)


def test_oversized_body_is_413_json(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/chat", {"message": "x" * 5000}, format="json")
    _assert_error_shape(response, 413, "payload_too_large")
