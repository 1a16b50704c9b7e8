"""The planner chooses what a careful engineer would choose from the real bundled catalogue, and each workflow step
gets the tool that means what the step says (agents_app.master.choice, agents_app.master.tool_choice)."""

import pytest

from sessions_app.handoff import _step_text
from agents_app.master.offline import OfflineAnalyzer
from agents_app.master.plan import WorkflowStep
from registry_app.importers.common import ServerRecord
from registry_app.importers.merge import merge_records
from registry_app.models import McpServer
from registry_app.selectors import server_search
from registry_app.standing import archived_repository, is_test_listing, retired

REQUESTS = [
    "Monitor my Gmail for specific emails, extract data, store it in Notion and send a Slack notification",
    "open a GitHub issue for every failed deploy",
    "create an issue in Jira when a customer complains",
    "charge a customer with Stripe",
    "download the attachments of new emails",
    "list the recent commits of my repo and post them to Slack",
    "query my Postgres database and save a report in Google Drive",
]


@pytest.fixture
def plans(bundled_catalogue):
    analyzer = OfflineAnalyzer()
    return {request: analyzer.analyze(request) for request in REQUESTS}


def test_archived_repositories_import_as_deprecated():
    archived = ServerRecord(source="awesome", source_id="x", location="", name="Slack MCP Server",
                            repository_url="https://github.com/modelcontextprotocol/servers-archived")
    assert merge_records([archived]).status == "deprecated"
    maintained = ServerRecord(source="awesome", source_id="y", location="", name="Git",
                              repository_url="https://github.com/modelcontextprotocol/servers")
    assert merge_records([maintained]).status == "active"
    assert not archived_repository("https://github.com/geiserx/telegram-archive-mcp")  # serves an archive


def test_test_listings_are_recognised_by_their_own_words():
    assert is_test_listing(slug="smithery-jessicayanwang-test", name="ai-smithery-jessicayanwang-test")
    assert is_test_listing(slug="mcp-weather-demo", name="MCP Weather Demo")
    assert not is_test_listing(slug="internet-speed-test", name="Internet Speed Test MCP")
    assert not is_test_listing(slug="slack-conversations", name="Slack MCP Server")


def test_the_bundled_catalogue_marks_archived_servers_and_keeps_maintained_reference_servers(bundled_catalogue):
    status = dict(McpServer.objects.filter(slug__in=[
        "modelcontextprotocol-server-slack", "modelcontextprotocol-server-github", "mcp-server-git",
        "modelcontextprotocol-server-fetch"]).values_list("slug", "status"))
    assert status == {"modelcontextprotocol-server-slack": "deprecated", "modelcontextprotocol-server-github": "deprecated",
                      "mcp-server-git": "active", "modelcontextprotocol-server-fetch": "active"}
    # PyPI "stripe" is Stripe's SDK, not an MCP server: the listing that launched it has no recipe any more.
    assert not McpServer.objects.get(slug="stripe-2").launch_recipes.exists()


def test_retired_servers_are_never_chosen(plans):
    chosen = [s for plan in plans.values() for s in plan.servers]
    servers = {s.slug: s for s in McpServer.objects.filter(slug__in=[c.slug for c in chosen])}
    for choice in chosen:
        server = servers[choice.slug]
        assert not retired(status=server.status, repository_url=server.repository_url), (choice.slug, choice.reason)
        assert not is_test_listing(slug=server.slug, name=server.name), choice.slug


def test_official_means_the_vendors_own_server_and_the_reason_names_the_rule(plans):
    by_need = {s.need: s for plan in plans.values() for s in plan.servers}
    for need, owner, rule in (("github", "github", "the vendor's own server"),
                              ("notion", "makenotion", "the vendor's own server"),
                              # Stripe's own is also the only Stripe server that can start here: that rule comes first.
                              ("stripe", "stripe", "the only one that can run here")):
        choice = by_need[need]
        assert f"github.com/{owner}/" in choice.repository_url, (need, choice)
        assert f"chosen as {rule}" in choice.reason, choice.reason
        assert "official (the vendor's own)" in choice.reason, choice.reason
    # Nobody's own server: the MCP project's git server is maintained, and not called official.
    git = by_need["git"]
    assert git.slug == "mcp-server-git" and "official" not in git.reason
    assert "reference server of the MCP project" in git.reason
    # Slack publishes no server of its own in the catalogue: the most used maintained one, with a bot token.
    slack = by_need["slack"]
    assert slack.slug == "slack-conversations", slack
    assert "chosen as the most used maintained server" in slack.reason and "official" not in slack.reason


def test_jira_gets_a_cloud_server_unless_the_request_says_self_hosted(plans, bundled_catalogue):
    jira = {s.need: s for s in plans["create an issue in Jira when a customer complains"].servers}["jira"]
    server = McpServer.objects.get(slug=jira.slug)
    assert "data center" not in f"{server.name} {server.description}".lower(), jira
    on_prem = OfflineAnalyzer().analyze("create an issue in our self-hosted Jira Data Center")
    server = McpServer.objects.get(slug=on_prem.servers[0].slug)
    assert "data center" in f"{server.name} {server.description}".lower(), on_prem.servers


def test_a_step_that_reads_mail_never_gets_an_outbound_only_service(plans):
    plan = plans["download the attachments of new emails"]
    (choice,) = plan.servers
    assert choice.slug not in {"resend-email", "resend"}, choice
    step = plan.workflow[0]
    assert step.tool is None or not step.tool.startswith("send"), step


def test_each_step_gets_the_tool_that_means_it_and_keeps_the_runner_up(plans):
    commits = plans["list the recent commits of my repo and post them to Slack"].workflow
    assert (commits[0].server, commits[0].tool) == ("mcp-server-git", "git_log"), commits
    assert commits[0].alternative_tool and commits[0].alternative_tool != "git_log"
    assert commits[1].tool == "conversations_add_message", commits
    spec = plans[REQUESTS[0]].workflow
    tools = {step.server: step.tool for step in spec if step.server}
    assert tools["notionhq-notion-mcp-server"] == "API-post-page", spec
    assert tools["slack-conversations"] == "conversations_add_message", spec
    # The agent's instructions name both.
    text = _step_text(commits[0])
    assert "tool git_log" in text and f"try {commits[0].alternative_tool}" in text
    assert _step_text(WorkflowStep(step=1, action="Summarise")) == "Summarise"


def test_search_never_puts_a_bare_listing_or_a_test_listing_first(bundled_catalogue):
    from registry_app.models import LaunchRecipe

    top = server_search(query="read my gmail", limit=5)[0].server
    assert top.tools.exists() or LaunchRecipe.objects.filter(server=top).exclude(kind="remote").exists() \
        or top.credentials.filter(location="header").exists(), top.slug
    hits = server_search(query="exchange rate currency", limit=5)
    assert not is_test_listing(slug=hits[0].server.slug, name=hits[0].server.name), [h.server.slug for h in hits]
    assert "smithery-jessicayanwang-test" in [h.server.slug for h in server_search(query="exchange rate currency",
                                                                                   limit=20)]
