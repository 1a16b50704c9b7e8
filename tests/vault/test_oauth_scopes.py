"""Per-server scopes against a real authorization server on 127.0.0.1 (tests/fakes/oauth_server.py, which grants
what is asked and, with Google's include_granted_scopes=true, keeps what was granted before): a plan needing several
Google servers gets one link asking for the union of their scopes and the app's base scopes; a connection lacking a
scope a newly planned server needs gets a new link (incremental authorization) instead of counting as connected."""

from urllib.parse import parse_qs, urlsplit

from agents_app.oauth_rules import oauth_needs
from mcpagent.vault.models import OAuthApp, OAuthConnection
from mcpagent.vault.oauth_flow import authorization_start
from sessions_app.models import Session
from tests.fakes.oauth_server import callback_path, follow
from tests.vault.conftest import OAUTH_CALLBACK as CALLBACK

GMAIL, DRIVE, GSC = "shinzolabs-gmail-mcp", "google-drive-mcp", "mcp-server-gsc"
GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
GSC_SCOPE = "https://www.googleapis.com/auth/webmasters.readonly"


def _needs(api, slugs):
    return oauth_needs(client=api.client_obj, end_user="alice", server_slugs=slugs)[1]


def _authorize(api, anon_api, needed: dict) -> dict:
    """Follow the link the chat reply would give for `needed`; the query the provider saw."""
    session = Session.objects.create(client=api.client_obj, end_user="alice")
    url = authorization_start(client=api.client_obj, end_user="alice", session_id=session.pk,
                              provider=needed["provider"], redirect_uri=CALLBACK, scopes=needed["scopes"])
    assert anon_api.get(callback_path(follow(url))).status_code == 200
    return parse_qs(urlsplit(url).query)


def test_one_link_asks_for_the_union_of_the_planned_google_servers_scopes(api, anon_api, oauth_server):
    [needed] = _needs(api, [GMAIL, DRIVE, GSC])
    assert needed["reason"] == "not_connected" and needed["mcp_servers"] == [GMAIL, DRIVE, GSC]
    assert needed["scopes"] == sorted([GMAIL_SCOPE, DRIVE_SCOPE, GSC_SCOPE])
    query = _authorize(api, anon_api, needed)
    assert query["scope"][0].split() == ["openid", "email", DRIVE_SCOPE, GMAIL_SCOPE, GSC_SCOPE]
    assert query["include_granted_scopes"] == ["true"] and query["access_type"] == ["offline"]
    granted = set(OAuthConnection.objects.get().scopes.split())
    assert granted == {"openid", "email", GMAIL_SCOPE, DRIVE_SCOPE, GSC_SCOPE}  # what the token answer said
    assert _needs(api, [GMAIL, DRIVE, GSC]) == []


def test_a_newly_planned_server_needing_more_scopes_gets_an_incremental_link(api, anon_api, oauth_server):
    [first] = _needs(api, [GMAIL])
    _authorize(api, anon_api, first)
    connection = OAuthConnection.objects.get()
    assert set(connection.scopes.split()) == {"openid", "email", GMAIL_SCOPE}
    assert _needs(api, [GMAIL]) == []  # Gmail alone: connected

    [more] = _needs(api, [GMAIL, DRIVE])  # Drive needs a scope the connection lacks
    assert more["reason"] == "missing_scopes" and more["mcp_servers"] == [DRIVE]
    assert more["credential_keys"] == [f"{DRIVE}:{k}" for k in ("GOOGLE_ACCESS_TOKEN", "GOOGLE_CLIENT_ID",
                                                                 "GOOGLE_CLIENT_SECRET")]
    assert set(more["scopes"]) >= {GMAIL_SCOPE, DRIVE_SCOPE}
    query = _authorize(api, anon_api, {**more, "scopes": [DRIVE_SCOPE]})  # even asking for Drive only...
    assert query["include_granted_scopes"] == ["true"]
    # ...Google keeps what was granted before: the same connection now holds both.
    updated = OAuthConnection.objects.get()
    assert updated.pk == connection.pk and {GMAIL_SCOPE, DRIVE_SCOPE} <= set(updated.scopes.split())
    assert _needs(api, [GMAIL, DRIVE]) == []


def test_a_connection_whose_token_named_no_scope_counts_as_holding_them(api, anon_api, oauth_server):
    _authorize(api, anon_api, _needs(api, [GMAIL])[0])
    OAuthConnection.objects.update(scopes="")  # RFC 6749 5.1: no scope in the answer means what was asked
    assert _needs(api, [GMAIL, DRIVE]) == []


def test_slack_scopes_are_comma_separated_both_ways(api, anon_api, oauth_server):
    oauth_server.register(OAuthApp, provider="slack")
    OAuthApp.objects.filter(provider="slack").update(scopes="users:read")
    [needed] = _needs(api, ["slack-conversations"])
    query = _authorize(api, anon_api, needed)
    asked = query["scope"][0]
    assert " " not in asked and asked.split(",")[0] == "users:read" and "chat:write" in asked.split(",")
    assert "," in OAuthConnection.objects.get(provider="slack").scopes  # the answer's scope, as Slack writes it
    assert _needs(api, ["slack-conversations"]) == []
