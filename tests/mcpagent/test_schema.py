"""The OpenAPI schema (/api/schema/) tells every status an operation can answer, errors in our one shape."""

import pytest

ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture
def schema(anon_api, db) -> dict:
    response = anon_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _responses(schema: dict, method: str, path: str) -> dict:
    return schema["paths"][path][method]["responses"]


@pytest.mark.parametrize("method, path, statuses", [
    ("get", "/api/agents", {401, 429}),
    ("get", "/api/agents/{agent_id}", {401, 404, 429}),
    ("post", "/api/agents/create", {400, 401, 413, 422, 429, 503}),
    ("post", "/api/agents/{agent_id}/messages", {400, 401, 404, 409, 413, 429, 502, 503}),
    ("post", "/api/chat", {400, 401, 404, 409, 413, 429}),
    ("post", "/api/sessions/{session_id}/files", {400, 401, 404, 413, 429}),
    ("delete", "/api/sessions/{session_id}", {401, 404, 429}),
    ("get", "/api/servers/", {400, 401, 429}),
    ("get", "/api/servers/search", {400, 401, 429, 503}),
])
def test_operations_list_their_error_responses_in_the_error_shape(schema, method, path, statuses):
    responses = _responses(schema, method, path)
    for status in statuses:
        assert str(status) in responses, (method, path, status)
        assert responses[str(status)]["content"]["application/json"]["schema"] == ERROR_REF
        assert responses[str(status)]["description"]


def test_every_authenticated_operation_documents_401_and_429(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if any(operation.get("security", [])):
                assert {"401", "429"} <= set(operation["responses"]), (method, path)


def test_error_component_is_the_error_shape(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert set(components["ErrorDetail"]["properties"]) == {"code", "message", "details"}


def test_health_is_neither_authenticated_nor_throttled(schema):
    assert set(_responses(schema, "get", "/api/health")) == {"200", "503"}


def test_server_list_is_documented_as_the_page_it_returns(schema, api):
    body = schema["paths"]["/api/servers/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    assert page["properties"]["results"]["type"] == "array"
    assert set(api.get("/api/servers/").json()) == set(page["properties"])


def test_empty_chat_message_is_invalid_in_the_schema_and_the_api(schema, api):
    assert schema["components"]["schemas"]["ChatRequest"]["properties"]["message"]["minLength"] == 1
    response = api.post("/api/chat", {"message": ""}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
