"""The LLM analyzer (agents_app.master.llm) through fast-agent against a fake Anthropic Messages server on 127.0.0.1
that streams real SSE events, with the catalogue search executed for real by the catalogue MCP server
(agents_app.master.catalogue_mcp, a child process) on the test database.

The catalogue rows are committed (transactional tests) because the MCP server is another process."""

import asyncio
import json
import socket
import threading
import time

import pytest
from django.conf import settings

from agents_app.master.catalogue_mcp import child_env, get_server, search_servers
from agents_app.master.llm import (
    CatalogueEntry,
    LlmAnalysisFailed,
    LlmAnalyzer,
    extract_json,
    validate_plan,
)
from agents_app.master.service import analyze_request
from registry_app.models import CredentialRequirement, McpServer, ServerTool
from tests.fakes.anthropic import (
    FakeAnthropic,
    api_error,
    text,
    tool_result_text,
    tool_results,
    tool_use,
)

REQUEST = ("Monitor my Gmail for specific emails, extract data from them, store it in Notion, "
           "then send a Slack notification")
SEARCH_TOOL = "catalogue__search_servers"
API_KEY = "sk-ant-test-key"

SERVERS = [
    # slug, name, description, repository, tools, required secret credentials, status
    ("gmail-mcp-server", "Gmail MCP Server", "Read, search and send Gmail email messages with OAuth.",
     "https://github.com/gongrzhe/server-gmail-autoauth-mcp", ["search_emails", "read_email", "send_email"],
     ["GMAIL_CLIENT_ID", "GMAIL_CLIENT_SECRET"], "active"),
    ("notion-mcp-server", "Notion MCP Server", "Official Notion server: create and update pages and databases.",
     "https://github.com/makenotion/notion-mcp-server", ["API-post-page", "API-patch-page", "API-post-search"],
     ["NOTION_TOKEN"], "active"),
    ("slack-mcp-server", "Slack MCP Server", "Post messages to Slack channels and read channel history.",
     "https://github.com/modelcontextprotocol/server-slack", ["slack_post_message", "slack_list_channels"],
     ["SLACK_BOT_TOKEN", "SLACK_TEAM_ID"], "active"),
    ("weather-mcp", "Weather MCP", "Weather forecasts and alerts for any city.",
     "https://github.com/example/weather-mcp", ["get_forecast"], [], "active"),
    ("github-mcp-server", "GitHub MCP Server", "Manage GitHub repositories, issues and pull requests.",
     "https://github.com/github/github-mcp-server", ["create_issue", "list_pull_requests"], ["GITHUB_TOKEN"],
     "active"),
    ("discord-mcp", "Discord MCP", "Send messages to Discord channels with a bot.",
     "https://github.com/example/discord-mcp", ["send_message"], ["DISCORD_TOKEN"], "active"),
    ("postgres-mcp", "PostgreSQL MCP", "Run read-only SQL queries against a PostgreSQL database.",
     "https://github.com/example/postgres-mcp", [], ["DATABASE_URL"], "active"),
    ("old-gmail-mcp", "Old Gmail MCP", "Deprecated Gmail email server.",
     "https://github.com/example/old-gmail-mcp", ["list_mail"], [], "deprecated"),
]


def _plan_json(**overrides) -> str:
    plan = {
        "needs": [
            {"key": "gmail", "name": "Gmail", "kind": "service", "phrase": "Monitor my Gmail"},
            {"key": "notion", "name": "Notion", "kind": "service", "phrase": "store it in Notion"},
            {"key": "slack", "name": "Slack", "kind": "service", "phrase": "send a Slack notification"},
        ],
        "servers": [
            # "name" is the model's guess; the plan must take names from the catalogue instead.
            {"need": "gmail", "slug": "gmail-mcp-server", "name": "Google Mail", "confidence": 0.95,
             "reason": "Named for Gmail; can search emails"},
            {"need": "notion", "slug": "notion-mcp-server", "confidence": 0.9, "reason": "Official Notion server"},
            {"need": "slack", "slug": "slack-mcp-server", "confidence": 0.9, "reason": "Posts Slack messages"},
        ],
        "workflow": [
            {"step": 1, "action": "Search Gmail for the matching emails", "server": "gmail-mcp-server",
             "tool": "search_emails"},
            {"step": 2, "action": "Extract the data from each email", "server": None, "tool": None},
            {"step": 3, "action": "Format the data for Notion", "server": None, "tool": None},
            {"step": 4, "action": "Store it as a Notion page", "server": "notion-mcp-server", "tool": "API-post-page"},
            {"step": 5, "action": "Send a Slack notification", "server": "slack-mcp-server",
             "tool": "slack_post_message"},
        ],
    }
    plan.update(overrides)
    return "Here is the plan.\n```json\n" + json.dumps(plan, indent=1) + "\n```"


@pytest.fixture
def catalogue(transactional_db):
    """A handful of catalogue servers, committed (the catalogue MCP server is another process), with embeddings."""
    from registry_app.embeddings import get_provider
    from registry_app.search_index import server_embeddings_refresh

    ids = []
    for slug, name, description, repository, tools, secrets, status in SERVERS:
        server = McpServer.objects.create(slug=slug, name=name, description=description, repository_url=repository,
                                          status=status)
        for tool in tools:
            ServerTool.objects.create(server=server, name=tool, description=f"{tool.replace('_', ' ')} on {name}")
        for key in secrets:
            CredentialRequirement.objects.create(server=server, key=key, kind="api_key", required=True, secret=True,
                                                 description=f"{key} for {name}")
        ids.append(server.id)
    server_embeddings_refresh(provider=get_provider(), server_ids=ids)
    return {s.slug: s for s in McpServer.objects.all()}


@pytest.fixture
def llm_settings(settings):
    settings.ANTHROPIC_API_KEY = API_KEY
    settings.ANALYZER_MODEL = "sonnet"
    settings.ANALYZER_MAX_RETRIES = 2
    settings.ANALYZER_TIMEOUT_SECONDS = 60.0
    return settings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _search_outputs(body: dict) -> list[dict]:
    return [json.loads(tool_result_text(result)) for result in tool_results(body)]


def _last_user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


# --- through fast-agent, the fake Anthropic server and the real catalogue MCP server --------------------------------

def test_model_searches_the_catalogue_and_its_plan_is_returned(catalogue, llm_settings, capfd):
    script = [
        [text("Let me search the catalogue."), tool_use(SEARCH_TOOL, {"query": "gmail email", "limit": 3})],
        [tool_use(SEARCH_TOOL, {"query": "notion pages"}), tool_use(SEARCH_TOOL, {"query": "slack notification"})],
        [text(_plan_json())],
    ]
    with FakeAnthropic(script) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url
        plan = LlmAnalyzer().analyze(REQUEST)

    assert plan.analyzer == "llm"
    assert plan.server_slugs() == ["gmail-mcp-server", "notion-mcp-server", "slack-mcp-server"]
    gmail = plan.servers[0]
    assert (gmail.name, gmail.repository_url) == ("Gmail MCP Server", catalogue["gmail-mcp-server"].repository_url)
    assert (gmail.need, gmail.confidence, gmail.reason) == ("gmail", 0.95, "Named for Gmail; can search emails")
    assert [(s.step, s.server, s.tool) for s in plan.workflow] == [
        (1, "gmail-mcp-server", "search_emails"), (2, None, None), (3, None, None),
        (4, "notion-mcp-server", "API-post-page"), (5, "slack-mcp-server", "slack_post_message"),
    ]
    assert [n.key for n in plan.needs] == ["gmail", "notion", "slack"]
    assert plan.notes == []
    # Nothing on stdout (fast-agent's console would otherwise print the parallel tool calls there, into the
    # output of `manage.py analyze --json`).
    assert capfd.readouterr().out == ""

    assert len(fake.requests) == 3
    first = fake.requests[0]
    assert {k.lower(): v for k, v in first["headers"].items()}.get("x-api-key") == API_KEY
    assert first["body"]["stream"] is True
    assert "workflow_analyzer" in json.dumps(first["body"]["system"])
    assert REQUEST in _last_user_text(first["body"])
    assert {t["name"] for t in first["body"]["tools"]} == {SEARCH_TOOL, "catalogue__get_server"}
    # The tool results the model got back are the real search output from the test database.
    gmail_search = _search_outputs(fake.requests[1]["body"])
    assert len(gmail_search) == 1
    results = gmail_search[0]["results"]
    assert results[0]["slug"] == "gmail-mcp-server" and len(results) <= 3
    assert results[0]["tools"] == ["read_email", "search_emails", "send_email"]
    assert results[0]["required_credentials"] == ["GMAIL_CLIENT_ID", "GMAIL_CLIENT_SECRET"]
    assert "old-gmail-mcp" not in {r["slug"] for r in results}  # deprecated servers are not offered
    outputs = _search_outputs(fake.requests[2]["body"])
    assert [o["query"] for o in outputs] == ["gmail email", "notion pages", "slack notification"]
    assert outputs[1]["results"][0]["slug"] == "notion-mcp-server"
    assert outputs[2]["results"][0]["slug"] == "slack-mcp-server"


def test_invalid_plan_gets_a_correction_and_the_second_answer_is_used(catalogue, llm_settings):
    bad = _plan_json(servers=[
        {"need": "gmail", "slug": "gmail-pro-server", "confidence": 0.9, "reason": "made up"},
        {"need": "notion", "slug": "notion-mcp-server", "confidence": 0.9, "reason": "Official"},
        {"need": "slack", "slug": "slack-mcp-server", "confidence": 1.7, "reason": "Posts messages"},
    ])
    script = [[tool_use(SEARCH_TOOL, {"query": "gmail"})], [text(bad)], [text(_plan_json())]]
    with FakeAnthropic(script) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url
        plan = LlmAnalyzer().analyze(REQUEST)

    assert plan.analyzer == "llm"
    assert plan.server_slugs() == ["gmail-mcp-server", "notion-mcp-server", "slack-mcp-server"]
    assert plan.notes == []
    assert len(fake.requests) == 3
    correction = _last_user_text(fake.requests[2]["body"])
    assert '"gmail-pro-server" is not a catalogue slug' in correction
    assert '"confidence" must be a number from 0 to 1' in correction
    # The conversation continues: the model sees its own rejected answer before the correction.
    assert "gmail-pro-server" in json.dumps(fake.requests[2]["body"]["messages"][-2])


def test_persistent_invalid_plans_fall_back_to_the_offline_analyzer(catalogue, llm_settings):
    llm_settings.ANALYZER_MAX_RETRIES = 1
    unknown_tool = _plan_json(workflow=[
        {"step": 1, "action": "Read Gmail", "server": "gmail-mcp-server", "tool": "fetch_inbox"},
    ])
    with FakeAnthropic([[text(unknown_tool)]]) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url
        plan = analyze_request(request=REQUEST)

    assert len(fake.requests) == 2  # the first answer and one correction
    assert '"fetch_inbox" is not a tool of "gmail-mcp-server"' in _last_user_text(fake.requests[1]["body"])
    assert plan.analyzer == "offline"
    assert len(plan.notes) >= 1 and "invalid plan after 2 attempt(s)" in plan.notes[-1]
    assert plan.notes[-1].endswith("planned offline.")


def test_api_500_falls_back_to_the_offline_analyzer(catalogue, llm_settings):
    with FakeAnthropic([api_error(500, "overloaded")]) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url
        plan = analyze_request(request=REQUEST)
    assert len(fake.requests) == 3  # the Anthropic SDK retries a 5xx twice, then we fall back
    assert plan.analyzer == "offline"
    assert plan.notes[-1] == ("The model was unavailable (model API error: InternalServerError (HTTP 500)); "
                              "planned offline.")


def test_api_401_fails_without_retrying(catalogue, llm_settings):
    with FakeAnthropic([api_error(401, "invalid x-api-key")]) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url
        with pytest.raises(LlmAnalysisFailed) as failed:
            LlmAnalyzer().analyze(REQUEST)
    assert failed.value.reason == "model API error: AuthenticationError (HTTP 401)"
    assert len(fake.requests) == 1


def test_connection_refused_falls_back_to_the_offline_analyzer(catalogue, llm_settings):
    llm_settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{_closed_port()}"
    plan = analyze_request(request=REQUEST)
    assert plan.analyzer == "offline"
    assert "model API error: APIConnectionError" in plan.notes[-1]


def test_unknown_model_is_a_fallback_not_a_dead_worker(catalogue, llm_settings):
    # fast-agent turns start-up errors into SystemExit(1), which would end a Celery worker process.
    llm_settings.ANALYZER_MODEL = "no-such-provider.no-such-model"
    with pytest.raises(LlmAnalysisFailed) as failed:
        LlmAnalyzer().analyze(REQUEST)
    assert failed.value.reason.startswith("fast-agent could not start")


def test_a_slow_model_is_bounded_by_the_analysis_timeout(catalogue, llm_settings):
    llm_settings.ANALYZER_TIMEOUT_SECONDS = 25.0
    release = threading.Event()

    def slow(body: dict) -> list[dict]:
        release.wait(60)  # the model never starts answering within the budget
        return [text(_plan_json())]

    from fast_agent import FastAgent  # noqa: F401 -- the one-off import per process is not part of the budget

    with FakeAnthropic([slow]) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url
        started = time.monotonic()
        try:
            with pytest.raises(LlmAnalysisFailed) as failed:
                LlmAnalyzer().analyze(REQUEST)
        finally:
            elapsed = time.monotonic() - started
            release.set()
    assert len(fake.requests) >= 1, failed.value.reason  # it got as far as asking the model
    assert "Timeout" in failed.value.reason or "within 25 s" in failed.value.reason, failed.value.reason
    assert elapsed < 35, elapsed


def test_analysis_from_inside_a_running_event_loop(catalogue, llm_settings):
    """Async callers (an async view, a notebook) block on the analysis, which runs its own loop in a thread."""
    with FakeAnthropic([[text(_plan_json())]]) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url

        async def caller():
            return LlmAnalyzer().analyze(REQUEST)

        plan = asyncio.run(caller())
    assert plan.server_slugs() == ["gmail-mcp-server", "notion-mcp-server", "slack-mcp-server"]


@pytest.fixture
def fake_for_worker(monkeypatch):
    """A fake Anthropic server whose address and key a Celery worker started after it inherits."""
    script = [[tool_use(SEARCH_TOOL, {"query": "gmail"})], [text(_plan_json())]]
    with FakeAnthropic(script) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        yield fake


def test_analysis_task_in_a_real_prefork_celery_worker(catalogue, fake_for_worker, celery_worker):
    """The production path: the analysis task in a prefork worker child runs fast-agent (asyncio in the child's main
    thread), which starts the catalogue MCP server on the worker's (test) database; the worker keeps serving."""
    from sessions_app.tasks import analyse_session
    from mcpagent.services import api_client_create
    from sessions_app.models import Session

    client, _ = api_client_create(name="worker-test")
    sessions = [Session.objects.create(client=client, status=Session.Status.ANALYSING, context={"request": REQUEST})
                for _ in range(2)]
    for session in sessions:
        status = analyse_session.delay(str(session.id)).get(timeout=180)
        assert status == Session.Status.PENDING_CREDENTIALS
    plans = [Session.objects.get(pk=s.pk).context["plan"] for s in sessions]
    assert plans[0]["analyzer"] == "llm", plans[0]["notes"]
    assert [s["slug"] for s in plans[0]["servers"]] == ["gmail-mcp-server", "notion-mcp-server", "slack-mcp-server"]
    assert plans[1]["analyzer"] == "llm", plans[1]["notes"]
    searched = _search_outputs(fake_for_worker.requests[1]["body"])
    assert searched[0]["results"][0]["slug"] == "gmail-mcp-server"


def test_excluded_servers_are_named_to_the_model_and_refused(catalogue, llm_settings):
    replaced = _plan_json(
        needs=[{"key": "discord", "name": "Discord", "kind": "service"}],
        servers=[{"need": "discord", "slug": "discord-mcp", "confidence": 0.8, "reason": "Discord bot"}],
        workflow=[{"step": 1, "action": "Send a Discord message", "server": "discord-mcp", "tool": "send_message"}],
    )
    with FakeAnthropic([[text(_plan_json())], [text(replaced)]]) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url
        plan = LlmAnalyzer().analyze(REQUEST, exclude_slugs={"slack-mcp-server"})
    assert "Do not choose these servers (the user ruled them out): slack-mcp-server" in _last_user_text(
        fake.requests[0]["body"])
    assert 'the user ruled out "slack-mcp-server"' in _last_user_text(fake.requests[1]["body"])
    assert plan.server_slugs() == ["discord-mcp"]


# --- the catalogue tools in-process ----------------------------------------------------------------------------------

def test_catalogue_tools_read_the_catalogue(catalogue):
    found = search_servers("notion pages", limit=2)
    assert found["results"][0]["slug"] == "notion-mcp-server"
    assert len(found["results"]) <= 2
    detail = get_server("slack-mcp-server")
    assert [t["name"] for t in detail["tools"]] == ["slack_list_channels", "slack_post_message"]
    assert {(c["key"], c["required"], c["secret"]) for c in detail["credentials"]} == {
        ("SLACK_BOT_TOKEN", True, True), ("SLACK_TEAM_ID", True, True)}
    with pytest.raises(ValueError, match="use a slug from search_servers"):
        get_server("old-gmail-mcp")  # deprecated


def test_child_env_points_at_this_database(transactional_db):
    from django.db import connection

    env = child_env()
    assert env["MCPAGENT_DB_NAME"] == connection.settings_dict["NAME"]
    assert env["DJANGO_SETTINGS_MODULE"] == "mcpagent.settings"
    assert "ANTHROPIC_API_KEY" not in env
    if not settings.DATABASE_URL:  # this process's environment no longer holds an MCPAGENT_DB_PASSWORD it was given
        assert env["MCPAGENT_DB_PASSWORD"] == connection.settings_dict["PASSWORD"]


# --- validation of the model's answer (pure) --------------------------------------------------------------------------

CATALOGUE = {
    "gmail": CatalogueEntry(slug="gmail", name="Gmail", repository_url="https://g", active=True,
                            tools=("search_emails", "send_email")),
    "notion": CatalogueEntry(slug="notion", name="Notion", repository_url="https://n", active=True, tools=()),
    "old": CatalogueEntry(slug="old", name="Old", repository_url="", active=False, tools=()),
}


def _validate(servers, workflow, needs=None, exclude=None):
    data = {"servers": servers, "workflow": workflow, "needs": needs or []}
    return validate_plan(data, request="r", catalogue=CATALOGUE, exclude_slugs=exclude)


def test_validation_accepts_and_normalises_a_good_plan():
    plan, problems = _validate(
        [{"need": "email", "slug": "gmail", "confidence": 0.8, "reason": "r"},
         {"need": "inbox", "slug": "gmail", "confidence": 0.9, "reason": "r"},
         {"need": "notes", "slug": "notion", "confidence": 1, "reason": "r"}],
        [{"step": 2, "action": "Read", "server": "gmail", "tool": "SEARCH_EMAILS"},
         {"step": 5, "action": "Summarise", "server": None, "tool": "llm"},
         {"step": 7, "action": "Store", "server": "notion", "tool": "create_page"}],
        needs=["email", {"key": "weather", "name": "Weather", "kind": "capability"}],
    )
    assert problems == []
    assert [(s.slug, s.need, s.confidence) for s in plan.servers] == [("gmail", "email, inbox", 0.9),
                                                                       ("notion", "notes", 1.0)]
    # Renumbered; tool spelling from the catalogue; no tool without a server or for a server with unknown tools.
    assert [(w.step, w.tool) for w in plan.workflow] == [(1, "search_emails"), (2, None), (3, None)]
    assert [n.key for n in plan.needs] == ["email", "weather", "inbox", "notes"]
    assert plan.notes == ["No catalogue server found for Weather."]


@pytest.mark.parametrize("servers, workflow, expected", [
    ([{"need": "x", "slug": "nope", "confidence": 0.5}], [], '"nope" is not a catalogue slug'),
    ([{"need": "x", "slug": "old", "confidence": 0.5}], [], '"old" is no longer active'),
    ([{"need": "x", "slug": "gmail", "confidence": -0.1}], [{"step": 1, "action": "a"}], "from 0 to 1"),
    ([{"need": "x", "slug": "gmail", "confidence": True}], [{"step": 1, "action": "a"}], "from 0 to 1"),
    ([{"slug": "gmail", "confidence": 0.5}], [{"step": 1, "action": "a"}], 'has no "need"'),
    ([{"need": "x", "slug": "gmail", "confidence": 0.5}], [], '"workflow" is empty'),
    ([{"need": "x", "slug": "gmail", "confidence": 0.5}],
     [{"step": 2, "action": "a"}, {"step": 1, "action": "b"}], "larger than the previous step"),
    ([{"need": "x", "slug": "gmail", "confidence": 0.5}],
     [{"step": 1, "action": "a", "server": "notion"}], '"notion", which is not in "servers"'),
    ([{"need": "x", "slug": "gmail", "confidence": 0.5}],
     [{"step": 1, "action": "a", "server": "gmail", "tool": "delete_all"}], '"delete_all" is not a tool of "gmail"'),
    ([{"need": "x", "slug": "gmail", "confidence": 0.5}], [{"step": 1, "action": " "}], 'has no "action"'),
    ("gmail", [], '"servers" must be a list'),
])
def test_validation_names_each_problem(servers, workflow, expected):
    plan, problems = _validate(servers, workflow)
    assert plan is None
    assert any(expected in p for p in problems), problems


def test_validation_refuses_excluded_servers():
    plan, problems = _validate([{"need": "x", "slug": "gmail", "confidence": 0.5}], [{"step": 1, "action": "a"}],
                               exclude={"gmail"})
    assert plan is None and problems == ['servers[1]: the user ruled out "gmail"; choose another server.']


def test_extract_json_takes_the_last_object_around_prose_and_fences():
    assert extract_json('I think {"a": 1} and finally ```json\n{"b": {"c": 2}}\n``` done') == {"b": {"c": 2}}
    assert extract_json("no json here { broken") is None
