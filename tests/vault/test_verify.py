"""Live token checks before storing, against fake providers on 127.0.0.1 speaking the real wire formats."""

import socket

import pytest

from mcpagent.vault.models import Credential
from sessions_app.credentials import credentials_store
from sessions_app.models import Session
from tests.fakes.providers import FakeProviders
from tests.sessions_app.secretscan import assert_no_plaintext_in_db

GOOD = "ghp_" + "G00dT0ken" * 4
BAD = "ghp_" + "BadT0ken0" * 4
SLACK_BAD = "xoxb-1234567890-0987654321-" + "b" * 24


@pytest.fixture
def providers(settings):
    with FakeProviders(valid={GOOD}) as fake:
        fake.configure(settings)
        yield fake


@pytest.fixture
def session(api):
    return Session.objects.create(client=api.client_obj, end_user="alice")


def _store(api, session, server, values):
    return credentials_store(client=api.client_obj, session=session, server=server, values=values,
                             actor=api.client_obj, reason="test")


def test_a_valid_token_is_stored_verified_with_who_it_is(api, session, providers):
    result = _store(api, session, "github-test", {"GITHUB_TOKEN": GOOD})
    assert result.ok and result.stored[0]["verification"] == "verified"
    row = Credential.objects.get()
    assert (row.verification, row.identity) == ("verified", "octocat")
    assert ("GET", "/github/user") in providers.requests
    [connection] = api.get("/api/connections", {"end_user": "alice"}).json()["connections"]
    assert connection["status"] == "active" and connection["identity"]["GITHUB_TOKEN"].startswith("octocat (")


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("GITHUB_TOKEN", BAD, "was rejected by GitHub: Bad credentials"),
    ("SLACK_BOT_TOKEN", SLACK_BAD, "was rejected by Slack: invalid_auth"),
    ("NOTION_API_KEY", "secret_" + "n" * 43, "was rejected by Notion: API token is invalid."),
    ("GOOGLE_ACCESS_TOKEN", "ya29." + "g" * 40, "was rejected by Google: Invalid Credentials"),
])
def test_a_rejected_token_is_a_400_naming_the_key_with_the_providers_reason(api, session, providers, key, value,
                                                                            reason):
    result = _store(api, session, "svc-test", {key: value})
    assert result.errors == {key: reason}
    assert not Credential.objects.exists()
    with pytest.raises(Exception) as raised:
        result.raise_for_errors()
    assert raised.value.status == 400 and value not in str(raised.value.details)


def test_chat_answers_400_for_a_rejected_token(api, session, providers):
    from registry_app.models import McpServer

    if not McpServer.objects.filter(slug="github-test").exists():
        McpServer.objects.create(slug="github-test", name="GitHub test", status=McpServer.Status.ACTIVE)
    response = api.post("/api/chat", {"message": "here", "session_id": str(session.pk), "end_user": "alice",
                                      "credentials": {"github-test": {"GITHUB_TOKEN": BAD}}}, format="json")
    assert response.status_code == 400, response.content
    body = response.content.decode()
    assert "GITHUB_TOKEN" in body and "Bad credentials" in body and BAD not in body


def test_an_unreachable_provider_stores_the_token_unverified_and_says_so(api, session, settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        settings.CREDENTIAL_VERIFY_GITHUB_URL = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings.CREDENTIAL_VERIFY = True
    result = _store(api, session, "github-test", {"GITHUB_TOKEN": GOOD})
    assert result.ok and result.stored[0]["verification"] == "unverified"
    assert result.stored[0]["note"] == "stored unverified: GitHub could not be reached to check it"
    assert Credential.objects.get().verification == "unverified"
    [connection] = api.get("/api/connections", {"end_user": "alice"}).json()["connections"]
    assert connection["status"] == "unverified"


def test_the_chat_reply_says_a_token_was_stored_unverified_and_why(api, session, settings):
    from registry_app.models import McpServer

    if not McpServer.objects.filter(slug="github-test").exists():
        McpServer.objects.create(slug="github-test", name="GitHub test", status=McpServer.Status.ACTIVE)
    with socket.socket() as probe:  # a port nothing listens on: a network failure
        probe.bind(("127.0.0.1", 0))
        settings.CREDENTIAL_VERIFY_GITHUB_URL = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings.CREDENTIAL_VERIFY = True
    response = api.post("/api/chat", {"message": "here", "session_id": str(session.pk), "end_user": "alice",
                                      "credentials": {"github-test": {"GITHUB_TOKEN": GOOD}}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["unverified_credentials"] == [{"mcp_server": "github-test", "credential_key": "GITHUB_TOKEN",
                                               "reason": "GitHub could not be reached to check it"}]
    assert "marked unverified" in body["reply"] and "GITHUB_TOKEN for github-test" in body["reply"]
    assert "GitHub could not be reached to check it" in body["reply"] and GOOD not in response.content.decode()
    assert Credential.objects.get().verification == "unverified"
    # A checked token says nothing of the kind.
    with FakeProviders(valid={GOOD}) as fake:
        fake.configure(settings)
        again = api.post("/api/chat", {"message": "again", "session_id": str(session.pk), "end_user": "alice",
                                       "credentials": {"github-test": {"GITHUB_TOKEN": GOOD}}}, format="json").json()
    assert again["unverified_credentials"] == [] and "unverified" not in again["reply"]
    assert Credential.objects.get().verification == "verified"


def test_a_provider_error_is_unverified_not_rejected(api, session, providers):
    providers.unavailable = True
    result = _store(api, session, "github-test", {"GITHUB_TOKEN": BAD})
    assert result.ok and Credential.objects.get().verification == "unverified"


def test_no_token_in_plain_text_in_the_database(api, session, providers):
    _store(api, session, "github-test", {"GITHUB_TOKEN": GOOD})
    _store(api, session, "github-test", {"GITHUB_TOKEN": BAD})
    assert_no_plaintext_in_db([GOOD, BAD])


def test_an_agents_value_stored_unverified_is_listed_on_the_agent(api, settings):
    from agents_app.models import Agent
    from agents_app.secrets import secrets_store

    with socket.socket() as probe:  # a port nothing listens on: a network failure
        probe.bind(("127.0.0.1", 0))
        settings.CREDENTIAL_VERIFY_GITHUB_URL = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings.CREDENTIAL_VERIFY = True
    agent = Agent.objects.create(client=api.client_obj, status=Agent.Status.READY, mcp_config={"mcpServers": {"gh": {
        "command": "python", "args": ["-c", "pass"], "env": {"GITHUB_TOKEN": {"$credential": "GITHUB_TOKEN"}}}}})
    secrets_store(agent=agent, server_name="gh", scope="custom/gh", values={"GITHUB_TOKEN": GOOD}, actor="test",
                  reason="agent_create")
    body = api.get(f"/api/agents/{agent.pk}").json()
    assert body["missing_credentials"] == []
    assert body["unverified_credentials"] == [{"server": "gh", "credential": "GITHUB_TOKEN", "kind": "value",
                                               "connection": f"custom/{agent.pk}/gh"}]
