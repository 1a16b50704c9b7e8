"""The product spec's example with a Google OAuth app registered against a real authorization server on 127.0.0.1:
the reply asks for no Gmail token but gives an authorization_url; completing it connects Gmail; a second request
for Gmail asks for nothing."""

import json
from pathlib import Path

import pytest

from agents_app.models import Agent
from agents_app.services import agent_launch, catalogue_servers, launch_specs
from mcpagent.vault.oauth_flow import authorization_start
from mcpagent.vault.models import OAuthApp, OAuthConnection
from sessions_app.models import Session
from tests.fakes.oauth_server import CLIENT_SECRET, FakeOAuthServer, callback_path, follow
from tests.sessions_app.test_chat import SPEC_REQUEST

CALLBACK = "http://testserver/api/oauth/callback"
GMAIL = "shinzolabs-gmail-mcp"


@pytest.fixture
def google(settings, db):
    # No OAUTH_REDIRECT_URL: the callback URL is this service's own, as the request reached it.
    settings.OAUTH_REDIRECT_URL = ""
    with FakeOAuthServer(redirect_uris=[CALLBACK]) as server:
        server.register(OAuthApp)
        yield server


def _chat(api, **body):
    response = api.post("/api/chat", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_spec_example_connects_gmail_by_oauth_and_asks_for_it_once(api, anon_api, bundled_catalogue, google):
    api.client_obj.oauth_return_hosts = ["app.example.com"]
    api.client_obj.save()
    body = _chat(api, message=SPEC_REQUEST, end_user="alice", return_url="https://app.example.com/connected")
    gmail = {s["need"]: s["slug"] for s in body["servers"]}["gmail"]
    assert gmail == GMAIL, body["servers"]
    assert body["status"] == "pending_credentials"
    assert not [c for c in body["required_credentials"] if c["mcp_server"] == GMAIL], body["required_credentials"]
    [link] = body["authorizations"]
    assert (link["provider"], link["mcp_servers"], link["reason"]) == ("google", [GMAIL], "not_connected")
    assert link["authorization_url"].startswith(google.url + "/authorize?")
    assert "authorization_url" in body["reply"] and "Google" in body["reply"]
    # The session view offers it too (a fresh link each time).
    shown = api.get(f"/api/sessions/{body['session_id']}").json()["authorizations"]
    assert [a["provider"] for a in shown] == ["google"] and shown[0]["authorization_url"] != link["authorization_url"]

    response = anon_api.get(callback_path(follow(link["authorization_url"])))
    assert response.status_code == 302 and response["Location"].startswith("https://app.example.com/connected?")
    connection = OAuthConnection.objects.get(client=api.client_obj, end_user="alice", provider="google")
    listed = api.get("/api/connections", {"end_user": "alice"}).json()["connections"]
    assert [(c["service"], c["kind"], c["status"]) for c in listed] == [("google", "oauth", "active")]
    assert connection.token["access_token"] not in str(listed)

    # The agent's Gmail server is configured with references to the keys the connection supplies, and a start
    # resolves them from it.
    session = Session.objects.get(pk=body["session_id"])
    chosen = catalogue_servers(session=session, server_slugs=[GMAIL])
    [(name, entry)] = chosen.servers.items()
    assert {entry["env"][k]["$credential"] for k in ("CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN")} == {
        "CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN"}
    agent = Agent.objects.create(client=api.client_obj, session=session, end_user="alice",
                                 mcp_config={"mcpServers": {name: {**entry, "catalogue": GMAIL}}})
    [spec] = launch_specs(agent, reason="test")
    assert spec.env["REFRESH_TOKEN"] == connection.token["refresh_token"]
    assert (spec.env["CLIENT_ID"], spec.env["CLIENT_SECRET"]) == ("test-client-id", CLIENT_SECRET)

    # The same session goes on without a Gmail authorization, and so does a new request.
    again = _chat(api, message="done", session_id=body["session_id"], end_user="alice")
    assert again["authorizations"] == []
    assert not [c for c in again["required_credentials"] if c["mcp_server"] == GMAIL]
    second = _chat(api, message=SPEC_REQUEST, end_user="alice")
    assert second["authorizations"] == []
    assert not [c for c in second["required_credentials"] if c["mcp_server"] == GMAIL]
    # Another end user of the same client is asked to connect their own account.
    bob = _chat(api, message=SPEC_REQUEST, end_user="bob")
    assert [a["provider"] for a in bob["authorizations"]] == ["google"]


def test_return_url_on_an_unregistered_host_is_400_and_stores_nothing(api, google):
    response = api.post("/api/chat", {"message": SPEC_REQUEST, "return_url": "https://evil.example.net/x"},
                        format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "return_url_not_allowed"
    assert not Session.objects.exists()


def test_a_server_that_wants_a_credentials_file_gets_a_generated_authorized_user_file(api, anon_api,
                                                                                     bundled_catalogue, google):
    session = Session.objects.create(client=api.client_obj, end_user="alice")
    anon_api.get(callback_path(follow(_link(api, session))))
    connection = OAuthConnection.objects.get()
    chosen = catalogue_servers(session=session, server_slugs=["mcp-server-gsc"])
    [(name, entry)] = chosen.servers.items()
    assert entry["env"]["GOOGLE_APPLICATION_CREDENTIALS"] == {"$credential": "GOOGLE_APPLICATION_CREDENTIALS",
                                                              "file": True}
    agent = Agent.objects.create(client=api.client_obj, session=session, end_user="alice",
                                 mcp_config={"mcpServers": {name: {**entry, "catalogue": "mcp-server-gsc"}}})
    with agent_launch(agent, reason="test") as [spec]:
        path = Path(spec.env["GOOGLE_APPLICATION_CREDENTIALS"])
        assert json.loads(path.read_text()) == {
            "type": "authorized_user", "client_id": "test-client-id", "client_secret": CLIENT_SECRET,
            "refresh_token": connection.token["refresh_token"]}
        assert str(path) in spec.file_paths
    assert not path.exists()


def _link(api, session) -> str:
    return authorization_start(client=api.client_obj, end_user=session.end_user, session_id=session.pk,
                               provider="google", redirect_uri=CALLBACK)
