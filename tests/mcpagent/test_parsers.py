import json

import pytest

from agents_app.models import Agent
from mcpagent.parsers import json_depth_exceeds

DEEP_ROUTES = ["/api/chat", "/api/agents/create", "/api/agents/{agent}/messages"]


def _nested(depth: int) -> str:
    """A JSON object whose "message" holds `depth` nested arrays (the body itself adds one level)."""
    return '{"message": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture
def agent(api):
    return Agent.objects.create(client=api.client_obj, name="deep", status=Agent.Status.READY)


@pytest.mark.parametrize("route", DEEP_ROUTES)
@pytest.mark.parametrize("depth", [100, 1_500, 100_000])
def test_too_deep_json_is_a_400_parse_error(api, agent, route, depth):
    response = api.generic("POST", route.format(agent=agent.id), _nested(depth), content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    error = json.loads(response.content)["error"]
    assert error["code"] == "parse_error"
    assert "nested deeper than 64 levels" in error["message"]
    assert error["details"] is None


def test_depth_limit_is_configurable_and_inclusive(api, settings):
    settings.MAX_JSON_DEPTH = 3
    # The body object plus two arrays: 3 levels, accepted by the parser (then refused by the serializer).
    response = api.generic("POST", "/api/chat", _nested(2), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    response = api.generic("POST", "/api/chat", _nested(3), content_type="application/json")
    assert response.json()["error"]["code"] == "parse_error"


def test_depth_counts_lists_and_dicts():
    assert not json_depth_exceeds("text", 0)
    assert not json_depth_exceeds({"a": [1, {"b": 2}]}, 3)
    assert json_depth_exceeds({"a": [1, {"b": 2}]}, 2)
    assert json_depth_exceeds([[], [[[]]]], 3)
    assert not json_depth_exceeds([[], [[[]]]], 4)
