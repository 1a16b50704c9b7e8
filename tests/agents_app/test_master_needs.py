"""Need detection from the whole catalogue: services no lexicon lists, capability needs chosen by their measured
fit, the question asked when the evidence is weak (and the next turn answering it), and the same candidates given
to Claude. Real PostgreSQL with the bundled catalogue and the real embedding model; the LLM path against the fake
Anthropic server."""

import json

import pytest
from django.db.models import Count

from agents_app.master.lexicon import lexicon
from agents_app.master.llm import CatalogueEntry, LlmAnalyzer, validate_plan
from agents_app.master.needs import CAPABILITY_PREFIX, detect_needs, resolve_answer, specific_action
from agents_app.master.offline import OfflineAnalyzer
from registry_app.models import McpServer
from registry_app.vocabulary import catalogue_mentions
from tests.agents_app.test_master_llm import _last_user_text, catalogue, llm_settings  # noqa: F401 (fixtures)
from tests.fakes.anthropic import FakeAnthropic, text


def _plan(request: str, **kwargs):
    return OfflineAnalyzer().analyze(request, **kwargs)


# --- services the lexicon does not list -----------------------------------------------------------------------

@pytest.mark.parametrize("request_text, named", [
    ("log my hours in Harvest", ["harvest"]),
    ("send them to Mattermost", ["mattermost"]),
    ("read my Apple Notes and add tasks to Things", ["apple", "things"]),
])
def test_services_named_in_the_catalogue_but_not_in_the_lexicon_get_their_server(bundled_catalogue, request_text,
                                                                                  named):
    assert not any(word in lexicon().by_key for word in named)
    plan = _plan(request_text)
    slugs = " ".join(plan.server_slugs())
    for word in named:
        assert word in slugs, plan.servers
    assert all(s.reason.split(" named")[0] for s in plan.servers)
    assert not plan.questions


def test_common_words_that_are_also_server_names_are_not_services(bundled_catalogue):
    # Servers are called "notes", "time", "web", "things": in lower case, in a sentence, these are plain words.
    mentions = catalogue_mentions("take notes of the time I spend on the web and do things with the files")
    assert mentions == []
    # Capitalised mid-sentence, "Things" is the app; a multi-word name beats its single words.
    keys = [m.service.key for m in catalogue_mentions("read my Apple Notes and add tasks to Things")]
    assert keys == ["apple-notes", "things"]


def test_the_lexicon_still_wins_where_it_matches(bundled_catalogue):
    keys = [entry.key for entry, _, _ in detect_needs("watch my inbox and post to Slack")]
    assert keys == ["gmail", "slack"]


def test_the_spec_example_still_plans_gmail_notion_slack(bundled_catalogue):
    plan = _plan("I want to create a workflow that monitors my Gmail for specific emails, extracts data, "
                 "stores it in Notion, and sends a Slack notification")
    assert {"gmail", "notion", "slack"} <= {s.need for s in plan.servers}
    assert not any(n.key.startswith(CAPABILITY_PREFIX) for n in plan.needs)


# --- capability needs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("request_text, fitting", [
    ("look up the definition of a word", ("word", "dictionar", "defin")),
    ("show me the air quality in Delhi", ("air", "weather", "aqi")),
])
def test_a_clause_naming_no_service_is_a_capability_and_a_fitting_server_is_chosen(bundled_catalogue, request_text,
                                                                                   fitting):
    plan = _plan(request_text)
    assert len(plan.servers) == 1 and plan.servers[0].need.startswith(CAPABILITY_PREFIX), plan.servers
    assert any(word in plan.servers[0].slug for word in fitting), plan.servers
    assert plan.workflow[0].server == plan.servers[0].slug
    assert not plan.questions


def test_a_verb_that_names_the_capability_finds_the_server_that_does_it(bundled_catalogue):
    # The whole clause reads as near to servers about voice memos or podcasts as to servers that transcribe; the
    # verb alone tells them apart. Everyday verbs say nothing of the capability and are not used.
    assert specific_action("transcribe my voice memo") == "transcribe"
    assert specific_action("get the exchange rate from euros to yen") is None
    assert specific_action("find a hotel in Barcelona") is None
    plan = _plan("transcribe my voice memo")
    assert len(plan.servers) == 1 and "transcri" in plan.servers[0].slug, (plan.servers, plan.questions)
    assert not plan.questions


def test_steps_the_model_does_itself_are_not_capability_needs(bundled_catalogue):
    plan = _plan("summarize the article and translate it into French")
    assert plan.servers == [] and plan.needs == [] and not plan.questions


def test_a_clause_pages_long_is_planned_from_its_start_not_refused_by_search(bundled_catalogue):
    # A pasted document with no clause breaks: search refuses queries over SEARCH_MAX_QUERY_CHARS, so the capability
    # is searched by the clause's start (LiveMCPBench has such tasks).
    long_clause = "find the air quality in Delhi " + "with every detail " * 400
    plan = _plan(long_clause)
    assert plan.needs and len(plan.needs[0].name) > 4000


def test_listings_nobody_can_start_and_whose_tools_are_unknown_are_never_chosen(bundled_catalogue):
    bare = set(McpServer.objects.annotate(t=Count("tools"), r=Count("launch_recipes")).filter(t=0, r=0)
               .values_list("slug", flat=True))
    for request_text in ("add a reminder to Apple Reminders", "show me the air quality in Delhi",
                         "save this note to Evernote"):
        assert not set(_plan(request_text).server_slugs()) & bare, request_text


def test_weak_evidence_asks_one_question_and_the_answer_resolves_it(bundled_catalogue, monkeypatch):
    # A stricter threshold than the product's makes the same evidence weak.
    monkeypatch.setitem(lexicon().analysis, "capability_min_fit", 0.99)
    plan = _plan("look up the definition of a word")
    assert plan.servers == [] and len(plan.questions) == 1
    question = plan.questions[0]
    assert 2 <= len(question.candidates) <= 3 and "1." in question.text and "2." in question.text
    second = question.candidates[1]["slug"]
    assert resolve_answer({"candidates": question.candidates}, "2") == second
    assert resolve_answer({"candidates": question.candidates}, second) == second
    assert resolve_answer({"candidates": question.candidates}, "something else entirely") is None
    answered = _plan("look up the definition of a word", choices={question.need: second})
    assert answered.server_slugs() == [second] and not answered.questions


def test_the_chat_asks_the_question_and_the_next_turn_answers_it(api, bundled_catalogue, monkeypatch):
    monkeypatch.setitem(lexicon().analysis, "capability_min_fit", 0.99)
    first = api.post("/api/chat", {"message": "look up the definition of a word"}, format="json").json()
    assert first["status"] == "success" and first["session_status"] == "new" and not first["agent_created"]
    assert len(first["questions"]) == 1 and first["servers"] == []
    question = first["questions"][0]
    assert question["question"] in first["reply"]
    chosen = question["candidates"][0]
    second = api.post("/api/chat", {"message": chosen["name"], "session_id": first["session_id"]},
                      format="json").json()
    assert [s["slug"] for s in second["servers"]] == [chosen["slug"]]
    assert second["questions"] == []
    assert second["status"] in {"success", "pending_credentials"}


# --- the LLM path ---------------------------------------------------------------------------------------------

def test_claude_gets_the_candidates_and_its_question_is_validated(catalogue, llm_settings):  # noqa: F811
    answer = {
        "needs": [{"key": "slack", "name": "Slack"}],
        "servers": [{"need": "slack", "slug": "slack-mcp-server", "confidence": 0.9, "reason": "named"}],
        "workflow": [{"step": 1, "action": "Post the forecast", "server": "slack-mcp-server",
                      "tool": "slack_post_message"}],
        "questions": [{"need": "forecast", "question": "Which forecast service do you use?",
                       "candidates": ["weather-mcp", "github-mcp-server"]}],
    }
    with FakeAnthropic([[text(json.dumps(answer))]]) as fake:
        llm_settings.ANTHROPIC_BASE_URL = fake.url
        plan = LlmAnalyzer().analyze("get the weather forecast for Paris, then post it to Slack")
    sent = _last_user_text(fake.requests[0]["body"])
    assert "Catalogue candidates per need" in sent
    candidates = json.loads(sent.split("Catalogue candidates per need (JSON):\n", 1)[1].split("\n\n")[0])
    assert "slack" in [need["key"] for need in candidates]
    assert any(c["slug"] == "slack-mcp-server" for need in candidates for c in need["candidates"])
    assert [c["name"] for c in plan.questions[0].candidates] == ["Weather MCP", "GitHub MCP Server"]


def test_a_question_naming_servers_outside_the_catalogue_is_refused():
    entries = {"weather-mcp": CatalogueEntry("weather-mcp", "Weather MCP", "", True, ())}
    data = {"needs": [], "servers": [], "workflow": [],
            "questions": [{"need": "x", "question": "Which?", "candidates": ["weather-mcp", "made-up"]}]}
    plan, problems = validate_plan(data, request="r", catalogue=entries)
    assert plan is None and "made-up" in problems[0]
