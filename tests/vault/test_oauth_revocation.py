"""Deleting an OAuth connection revokes it in the provider's own style, against the real authorization server on
127.0.0.1 (tests/fakes/oauth_server.py): Slack's `auth.revoke`, GitHub's grant deletion; Notion offers none, and
the answer says so. The connection is forgotten in every case, and the answer tells the client what happened."""

import pytest

from mcpagent.vault.models import AuditEvent, OAuthApp, OAuthConnection
from mcpagent.vault.oauth_flow import authorization_start
from sessions_app.models import Session
from tests.fakes.oauth_server import FakeOAuthServer, callback_path, follow

CALLBACK = "http://testserver/api/oauth/callback"


@pytest.fixture
def oauth_server(settings, db):
    settings.OAUTH_REDIRECT_URL = CALLBACK
    with FakeOAuthServer(redirect_uris=[CALLBACK]) as server:
        yield server


def _connect(api, anon_api, server, provider: str) -> OAuthConnection:
    server.register(OAuthApp, provider=provider)
    session = Session.objects.create(client=api.client_obj, end_user="alice")
    url = authorization_start(client=api.client_obj, end_user="alice", session_id=session.pk, provider=provider,
                              redirect_uri=CALLBACK)
    assert anon_api.get(callback_path(follow(url))).status_code == 200
    return OAuthConnection.objects.get(provider=provider)


def _delete(api, row) -> dict:
    response = api.delete(f"/api/connections/{row.pk}?end_user=alice")
    assert response.status_code == 200, response.content
    assert not OAuthConnection.objects.filter(pk=row.pk).exists()
    return response.json()


def test_slack_connection_is_revoked_with_auth_revoke(api, anon_api, oauth_server):
    row = _connect(api, anon_api, oauth_server, "slack")
    token = OAuthConnection.objects.get(pk=row.pk).token
    body = _delete(api, row)
    assert body["deleted"] is True and body["provider"] == "slack" and body["revoked"] is True
    assert ("POST", "/api/auth.revoke") in oauth_server.requests
    assert oauth_server.revoked == [token["access_token"]]
    assert not oauth_server.access_token_works(token["access_token"])
    event = AuditEvent.objects.get(action="delete", object_type="oauth_connection")
    assert event.metadata == {"revoked": True}


def test_github_connection_is_revoked_by_deleting_the_grant(api, anon_api, oauth_server):
    row = _connect(api, anon_api, oauth_server, "github")
    token = OAuthConnection.objects.get(pk=row.pk).token
    body = _delete(api, row)
    assert body["revoked"] is True and "revoked" in body["message"]
    assert ("DELETE", "/applications/test-client-id/grant") in oauth_server.requests
    assert not oauth_server.access_token_works(token["access_token"])


def test_a_refused_revocation_still_forgets_the_connection_and_says_so(api, anon_api, oauth_server):
    row = _connect(api, anon_api, oauth_server, "github")
    OAuthApp.objects.filter(provider="github").update(client_secret="not-the-secret")  # GitHub answers 401
    token = OAuthConnection.objects.get(pk=row.pk).token
    body = _delete(api, row)
    assert body["revoked"] is False and "HTTP 401" in body["message"]
    assert "not-the-secret" not in str(body) and token["access_token"] not in str(body)
    assert oauth_server.access_token_works(token["access_token"])  # not revoked: the user is told to check


def test_notion_has_no_revocation_and_the_answer_says_to_remove_the_integration(api, anon_api, oauth_server):
    row = _connect(api, anon_api, oauth_server, "notion")
    before = list(oauth_server.requests)
    body = _delete(api, row)
    assert body["revoked"] is None and "remove the integration in Notion" in body["message"]
    assert oauth_server.requests == before  # nothing was asked of the provider
