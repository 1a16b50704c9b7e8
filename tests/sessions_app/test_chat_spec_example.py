"""The product spec's example end to end through HTTP: the Gmail -> Notion -> Slack request (offline planner), the
credentials on the second turn, the proposed schedule kept, the agent validated by really starting its three
servers in their sandboxes, and the schedule firing a run listed by GET /api/agents/{id}/runs.

Gmail's and Notion's servers need no network to start; Slack's (korotovsky's slack-mcp-server, a Go binary from
npm) signs in with auth.test and loads the workspace's users and channels before it answers initialize. It reaches
Slack the way it does in production: through its sandbox's egress proxy (it reads SLACK_MCP_PROXY, not
HTTPS_PROXY), which SANDBOX_NETWORK_CONNECT_TO routes here to a fake Slack on 127.0.0.1 with a certificate for
slack.com from a test CA that the server trusts through SSL_CERT_FILE (the host's CA bundle setting that every
sandbox inherits). Nothing of the validation, the sandbox or the proxy's checks is bypassed.

Warm, the test takes seconds; the first run on a machine downloads the three packages (about a minute)."""

import pytest

from agents_app.models import Agent, AgentRun, AgentSchedule
from agents_app.tasks import agent_schedules_tick
from tests.agents_app.test_schedules import make_due
from tests.fakes.slack import FakeSlack
from tests.fakes.tls import FakeCA
from tests.sessions_app.test_chat import SPEC_REQUEST, _chat, _value_for

SLACK_TOKEN = "xoxb-4242424242-4242424242424-SpecExampleBot0042"
REVOKED_TOKEN = "xoxb-1111111111-2222222222222-RevokedBot00000011"
SERVERS = {"shinzolabs-gmail-mcp", "notionhq-notion-mcp-server", "slack-conversations"}


@pytest.fixture
def fake_slack(tmp_path, settings, monkeypatch):
    """A fake Slack that sandboxed servers reach as https://slack.com (and its subdomains) through the egress
    proxy; only `SLACK_TOKEN` signs in."""
    ca = FakeCA(tmp_path / "ca")
    with FakeSlack(ca, valid={SLACK_TOKEN}) as slack:
        settings.SANDBOX_NETWORK_CONNECT_TO = [f"slack.com=127.0.0.1:{slack.port}"]
        settings.SANDBOX_NETWORK_ALLOW_HOSTS = [*settings.SANDBOX_NETWORK_ALLOW_HOSTS, "slack.com"]
        settings.SANDBOX_EXTRA_READONLY_PATHS = [*settings.SANDBOX_EXTRA_READONLY_PATHS, str(ca.bundle)]
        monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle))
        yield slack


def _credentials(required: list[dict], slack_token: str) -> dict[str, dict[str, str]]:
    credentials: dict[str, dict[str, str]] = {}
    for item in required:
        value = slack_token if item["credential_key"] == "SLACK_MCP_XOXB_TOKEN" else _value_for(item)
        credentials.setdefault(item["mcp_server"], {})[item["credential_key"]] = value
    return credentials


def test_spec_example_reaches_a_ready_agent_whose_schedule_fires_and_records_a_run(api, bundled_catalogue, settings,
                                                                                  fake_slack):
    settings.AGENT_VALIDATION_TIMEOUT_SECONDS = 150  # a machine's first run downloads the packages
    first = _chat(api, message=SPEC_REQUEST, timezone="Europe/Berlin").json()
    assert {s["slug"] for s in first["servers"]} == SERVERS, first["servers"]
    assert first["schedule"]["status"] == "proposed" and first["schedule"]["interval_seconds"] == 900
    session_id = first["session_id"]

    # A revoked Slack token: Gmail and Notion start, Slack's own sign-in fails, and the reply says which server
    # failed and why.
    failed = _chat(api, message="Here are my credentials", session_id=session_id,
                   credentials=_credentials(first["required_credentials"], REVOKED_TOKEN)).json()
    assert failed["agent_created"] is False and failed["status"] == "error", failed
    agent = Agent.objects.get(session_id=session_id)
    outcome = {name: result["ok"] for name, result in agent.metadata["validation"]["servers"].items()}
    assert outcome == {"shinzolabs-gmail-mcp": True, "notionhq-notion-mcp-server": True,
                       "slack-conversations": False}, agent.error
    assert agent.error["server"] == "slack-conversations" and agent.error["code"] == "credentials_rejected"
    assert "Slack MCP Server rejected the credentials" in failed["reply"], failed["reply"]
    # Slack's own answer as the server logged it (not the npm wrapper's stack trace after it), and the hint names
    # the user's credential only (not the catalogue's SLACK_MCP_ADD_MESSAGE_TOOL=true).
    assert "The server said: Authentication failed - check your Slack tokens: invalid_auth" in failed["reply"]
    assert "Check SLACK_MCP_XOXB_TOKEN: " in failed["reply"] and "SLACK_MCP_ADD_MESSAGE_TOOL" not in failed["reply"]
    assert fake_slack.calls[0] == ("auth.test", REVOKED_TOKEN)
    assert REVOKED_TOKEN not in failed["reply"]

    # The right token: every server starts and lists its tools, and the kept proposal becomes the schedule.
    fake_slack.calls.clear()
    body = _chat(api, message="Sorry, this is the current bot token", session_id=session_id,
                 credentials={"slack-conversations": {"SLACK_MCP_XOXB_TOKEN": SLACK_TOKEN}}).json()
    assert body["agent_created"] is True and body["session_status"] == "ready", body["reply"]
    assert body["schedule"]["status"] == "applied" and body["schedule"]["interval_seconds"] == 900
    agent_id = body["agent_id"]
    detail = api.get(f"/api/agents/{agent_id}").json()
    assert detail["status"] == "ready"
    tools = {server: {tool["name"] for tool in found} for server, found in Agent.objects.get(id=agent_id).tools.items()}
    assert set(tools) == SERVERS
    assert {"list_messages"} <= tools["shinzolabs-gmail-mcp"] and {"API-post-page"} <= tools[
        "notionhq-notion-mcp-server"] and {"conversations_add_message"} <= tools["slack-conversations"], tools
    # Slack's server really signed in and loaded the workspace, through the sandbox's proxy.
    assert {"auth.test", "users.list", "conversations.list"} <= set(fake_slack.methods()), fake_slack.calls
    assert {token for _, token in fake_slack.calls} == {SLACK_TOKEN}

    # The schedule fires: the beat's task finds it due and the run (its servers started again) is listed.
    schedule = AgentSchedule.objects.get(agent_id=agent_id)
    assert (schedule.interval_seconds, schedule.timezone, schedule.enabled) == (900, "Europe/Berlin", True)
    fake_slack.calls.clear()
    make_due(agent_id)
    assert agent_schedules_tick.delay().get() == 1
    runs = api.get(f"/api/agents/{agent_id}/runs").json()["results"]
    assert [(r["trigger"], r["status"]) for r in runs] == [("schedule", "succeeded")], runs
    assert AgentRun.objects.get(agent_id=agent_id).trigger == AgentRun.Trigger.SCHEDULE
    assert "auth.test" in fake_slack.methods()
