"""Catalogue API: search, detail, list; authentication and the error shape."""

import pytest

from registry_app.embeddings import get_provider
from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer, ServerSource
from registry_app.search_index import refresh_search_fields, server_embeddings_refresh
from tests.registry_app.test_search import make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def servers(db) -> dict[str, McpServer]:
    s = {
        "slack": make_server(
            "Slack MCP Server", "Official Slack server: post messages, read channels.", slug="slack-official",
            repo="https://github.com/slackapi/slack-mcp-server",
            tools=[("slack_post_message", "Post a message"), ("slack_list_channels", "List channels")],
            credentials=["SLACK_BOT_TOKEN"], categories=["communication"], official=True, verified=True, popularity=0.9,
        ),
        "slack_bot": make_server("mcp-slack-bot", "A Slack bot posting messages.", categories=["communication"]),
        "gmail": make_server("Gmail", "Read and send Gmail email.", slug="gmail", categories=["communication"]),
        "postgres": make_server("PostgreSQL", "Query a PostgreSQL database.", slug="postgres", categories=["databases"]),
        "old": make_server("Old Slack", "Deprecated Slack server.", slug="old-slack", status=McpServer.Status.DEPRECATED),
        "hidden": make_server("Hidden Slack", "Hidden Slack server.", slug="hidden-slack", status=McpServer.Status.HIDDEN),
    }
    CredentialRequirement.objects.create(
        server=s["slack"], key="SLACK_CHANNEL_IDS", required=False, description="Channels to limit access to."
    )
    token = s["slack"].credentials.get(key="SLACK_BOT_TOKEN")
    token.description = "Bot token (xoxb-...)"
    token.instructions = ["Open api.slack.com/apps", "Create an app", "Copy the Bot User OAuth Token"]
    token.pattern = r"^xoxb-"
    token.service = "slack"
    token.save()
    ServerSource.objects.create(server=s["slack"], source="official", source_id="com.slack/mcp", location="x.json:3")
    LaunchRecipe.objects.filter(server=s["slack"]).update(env={"SLACK_BOT_TOKEN": "${SLACK_BOT_TOKEN}"})
    refresh_search_fields()
    server_embeddings_refresh(provider=get_provider(), use_cache=False)
    return s


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.parametrize("url", ["/api/servers/search?q=slack", "/api/servers/slack-official", "/api/servers/"])
def test_endpoints_need_an_api_key(anon_api, servers, url):
    assert_error(anon_api.get(url), 401, "not_authenticated")
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer mcpa_wrong")
    assert_error(anon_api.get(url), 401, "authentication_failed")


def test_search_returns_ranked_results(api, servers):
    response = api.get("/api/servers/search", {"q": "send a slack message", "limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "send a slack message" and body["took_ms"] >= 0
    assert len(body["results"]) == 3
    first = body["results"][0]
    assert set(first) == {
        "slug", "name", "description", "repository_url", "categories", "status", "official", "verified",
        "tools_count", "credentials", "score",
    }
    assert first["slug"] == "slack-official" and first["official"] and first["verified"]
    assert first["tools_count"] == 2 and first["credentials"] == ["SLACK_BOT_TOKEN"]  # required keys only
    assert first["categories"] == ["communication"]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    slugs = [r["slug"] for r in body["results"]]
    assert "old-slack" not in slugs and "hidden-slack" not in slugs


def test_search_filters_and_explains(api, servers):
    body = api.get("/api/servers/search", {"q": "database", "category": "databases", "explain": "true"}).json()
    assert [r["slug"] for r in body["results"]] == ["postgres"]
    assert {"dense_rank", "lexical_rank", "name_match", "prior", "base"} <= set(body["results"][0]["ranking"])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "empty_query"),
        ({"q": "   "}, "empty_query"),
        ({"q": "x" * 100_000}, "query_too_long"),
        ({"q": "slack", "limit": 0}, "validation_error"),
        ({"q": "slack", "limit": 101}, "validation_error"),
        ({"q": "slack", "limit": "ten"}, "validation_error"),
    ],
)
def test_search_bad_input_is_400(api, servers, params, code):
    error = assert_error(api.get("/api/servers/search", params), 400, code)
    if code == "query_too_long":
        assert "4000" in error["message"] and error["details"]["max_length"] == 4000


@pytest.mark.parametrize("q", ["'; DROP TABLE registry_app_mcpserver; --", ".*(", "&|!:*", "slack:* & !(", "%00"])
def test_search_hostile_queries_are_not_errors(api, servers, q):
    response = api.get("/api/servers/search", {"q": q})
    assert response.status_code == 200
    assert McpServer.objects.count() == len(servers)


def test_search_nul_character_is_a_validation_error(api, servers):
    assert_error(api.get("/api/servers/search", {"q": "\x00slack"}), 400, "validation_error")


def test_detail_has_everything(api, servers):
    response = api.get("/api/servers/slack-official")
    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == "slack-official" and body["status"] == "active" and body["official"]
    assert [t["name"] for t in body["tools"]] == ["slack_list_channels", "slack_post_message"]
    token, channels = body["credentials"]  # required first
    assert token == {
        "key": "SLACK_BOT_TOKEN", "location": "env", "kind": "token", "description": "Bot token (xoxb-...)",
        "instructions": ["Open api.slack.com/apps", "Create an app", "Copy the Bot User OAuth Token"],
        "service": "slack", "required": True, "secret": True, "pattern": "^xoxb-", "format": "", "default": "",
        "choices": [], "example": "",
    }
    assert channels["key"] == "SLACK_CHANNEL_IDS" and channels["required"] is False
    (recipe,) = body["launch_recipes"]
    assert recipe["kind"] == "npm" and recipe["command"] == "npx" and recipe["env"] == {"SLACK_BOT_TOKEN": "${SLACK_BOT_TOKEN}"}
    (source,) = body["sources"]
    assert source["source"] == "official" and source["source_id"] == "com.slack/mcp" and source["location"] == "x.json:3"


def test_detail_of_deprecated_hidden_and_unknown(api, servers):
    assert api.get("/api/servers/old-slack").json()["status"] == "deprecated"
    assert_error(api.get("/api/servers/hidden-slack"), 404, "not_found")
    error = assert_error(api.get("/api/servers/no-such-server"), 404, "not_found")
    assert error["details"] == {"slug": "no-such-server"}


def test_list_is_paginated_and_filtered(api, servers):
    body = api.get("/api/servers/", {"page_size": 2}).json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"] and body["previous"] is None
    page2 = api.get("/api/servers/", {"page_size": 2, "page": 2}).json()
    names = [r["name"] for r in body["results"] + page2["results"]]
    assert names == sorted(names)  # by name
    assert {r["slug"] for r in api.get("/api/servers/", {"category": "databases"}).json()["results"]} == {"postgres"}
    assert [r["slug"] for r in api.get("/api/servers/", {"status": "deprecated"}).json()["results"]] == ["old-slack"]
    assert_error(api.get("/api/servers/", {"status": "hidden"}), 400, "validation_error")
    assert_error(api.get("/api/servers/", {"page": 99}), 404, "not_found")


def test_schema_documents_the_endpoints(anon_api):
    response = anon_api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/servers/", "/api/servers/search", "/api/servers/{slug}"} <= set(paths)
    search_params = {p["name"] for p in paths["/api/servers/search"]["get"]["parameters"]}
    assert {"q", "limit", "category"} <= search_params
    schemas = response.json()["components"]["schemas"]
    assert "results" in schemas["ServerSearchResponse"]["properties"]
    assert "instructions" in schemas["ServerCredentialRequirement"]["properties"]
