"""OAuth connections against a real authorization server on 127.0.0.1 (tests/fakes/oauth_server.py): the link, the
callback, PKCE, refresh on expiry and after a 401, needs_reauth, revocation on delete, isolation, and no token in
plain text in the database or the logs."""

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from django.db import connection
from django.utils import timezone

from agents_app.models import Agent
from agents_app.oauth_rules import google_authorized_user, oauth_needs
from agents_app.secrets import secrets_for_use
from mcpagent.errors import ApplicationError
from mcpagent.vault.materialize import generated_files_materialize
from mcpagent.vault.models import AuditEvent, OAuthConnection, OAuthState
from mcpagent.vault.oauth_flow import authorization_start, states_purge_expired
from mcpagent.vault.oauth_tokens import identity_for, token_for_use
from mcpagent.vault.store import credentials_store
from sessions_app.models import Session
from tests.fakes.oauth_server import CLIENT_SECRET, callback_path, follow
from tests.sessions_app.conftest import log_capture  # noqa: F401  (shared fixture)
from tests.vault.conftest import OAUTH_CALLBACK as CALLBACK

GMAIL = "shinzolabs-gmail-mcp"
GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.modify"


def _start(api, end_user="alice", return_url="") -> str:
    session = Session.objects.create(client=api.client_obj, end_user=end_user)
    return authorization_start(client=api.client_obj, end_user=end_user, session_id=session.pk, provider="google",
                               redirect_uri=CALLBACK, return_url=return_url, scopes=[GMAIL_SCOPE])


def _connect(api, anon_api, end_user="alice") -> OAuthConnection:
    response = anon_api.get(callback_path(follow(_start(api, end_user))))
    assert response.status_code == 200, response.content
    return OAuthConnection.objects.get(client=api.client_obj, end_user=end_user)


def _state(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def test_link_carries_pkce_s256_and_a_state_kept_only_hashed(api, oauth_server):
    url = _start(api)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(oauth_server.url + "/authorize?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [CALLBACK] and query["client_id"] == ["test-client-id"]
    row = OAuthState.objects.get()
    assert row.state_hash != _state(url) and len(row.state_hash) == 64 and row.end_user == "alice"
    assert _state(url) not in str(OAuthState.objects.values_list("state_hash", "redirect_uri", "return_url"))


def test_callback_connects_and_redirects_only_to_a_registered_host(api, anon_api, oauth_server):
    api.client_obj.oauth_return_hosts = ["app.example.com"]
    api.client_obj.save()
    with pytest.raises(ApplicationError) as refused:
        _start(api, return_url="https://evil.example.net/back")
    assert refused.value.code == "return_url_not_allowed" and not OAuthState.objects.exists()
    response = anon_api.get(callback_path(follow(_start(api, return_url="https://app.example.com/back?x=1"))))
    assert response.status_code == 302
    back = urlsplit(response["Location"])
    connection_row = OAuthConnection.objects.get()
    assert (back.hostname, back.path) == ("app.example.com", "/back")
    assert parse_qs(back.query) == {"x": ["1"], "oauth": ["connected"], "provider": ["google"],
                                    "connection_id": [str(connection_row.pk)]}
    assert connection_row.identity == "ann@example.com" and connection_row.status == "active"


def test_wrong_state_is_400_and_changes_nothing(api, anon_api, oauth_server):
    location = follow(_start(api))
    parts = urlsplit(location)
    query = parse_qs(parts.query)
    forged = urlencode({"code": query["code"][0], "state": "x" * 43})
    response = anon_api.get(f"{parts.path}?{forged}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_state"
    assert not OAuthConnection.objects.exists() and OAuthState.objects.get().used_at is None
    assert anon_api.get(parts.path).status_code == 400  # no state at all


def test_replayed_state_is_400_and_changes_nothing(api, anon_api, oauth_server):
    location = follow(_start(api))
    assert anon_api.get(callback_path(location)).status_code == 200
    before = (OAuthConnection.objects.get().updated_at, AuditEvent.objects.count())
    again = anon_api.get(callback_path(location))
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_state"
    assert (OAuthConnection.objects.get().updated_at, AuditEvent.objects.count()) == before


def test_expired_state_is_400(api, anon_api, oauth_server):
    location = follow(_start(api))
    OAuthState.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = anon_api.get(callback_path(location))
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_state"
    assert not OAuthConnection.objects.exists()


def test_pkce_mismatch_is_refused_by_the_provider(api, anon_api, oauth_server):
    """Someone swaps the code challenge on the way to the provider: the code is then bound to a challenge our
    verifier does not match, and the exchange fails."""
    parts = urlsplit(_start(api))
    query = parse_qs(parts.query)
    query["code_challenge"] = ["A" * 43]
    tampered = urlunsplit(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))
    response = anon_api.get(callback_path(follow(tampered)))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "oauth_failed" and "invalid_grant" in error["message"]
    assert not OAuthConnection.objects.exists()


def test_denied_authorization_is_400(api, anon_api, oauth_server):
    oauth_server.deny = True
    response = anon_api.get(callback_path(follow(_start(api))))
    assert response.status_code == 400 and response.json()["error"]["code"] == "oauth_denied"
    assert not OAuthConnection.objects.exists()


def test_refresh_before_use_when_expired(api, anon_api, oauth_server):
    first = _connect(api, anon_api)
    old = OAuthConnection.objects.get().token
    OAuthConnection.objects.update(access_expires_at=timezone.now() - timedelta(seconds=5))
    token = token_for_use(client=api.client_obj, end_user="alice", provider="google", actor="test", reason="t")
    assert token.access_token != old["access_token"] and oauth_server.access_token_works(token.access_token)
    assert token.refresh_token != old["refresh_token"]  # the server rotates refresh tokens
    row = OAuthConnection.objects.get(pk=first.pk)
    assert row.access_expires_at > timezone.now() and row.token["access_token"] == token.access_token
    assert AuditEvent.objects.filter(action="rotate", object_id=str(first.pk), metadata__refreshed=True).exists()
    # Still fresh: used as it is.
    again = token_for_use(client=api.client_obj, end_user="alice", provider="google", actor="test", reason="t")
    assert again.access_token == token.access_token


def test_refresh_after_a_401(api, anon_api, oauth_server):
    _connect(api, anon_api)
    old = OAuthConnection.objects.get().token["access_token"]
    oauth_server.expire_access_tokens()
    assert not oauth_server.access_token_works(old)
    assert identity_for(client=api.client_obj, end_user="alice", provider="google", actor="t", reason="t") \
        == "ann@example.com"
    new = OAuthConnection.objects.get().token["access_token"]
    assert new != old and oauth_server.access_token_works(new)


def test_failed_refresh_marks_needs_reauth_and_the_next_reply_offers_a_link(api, anon_api, oauth_server):
    _connect(api, anon_api)
    oauth_server.refuse_refresh = True
    OAuthConnection.objects.update(access_expires_at=timezone.now() - timedelta(seconds=5))
    with pytest.raises(ApplicationError) as failed:
        token_for_use(client=api.client_obj, end_user="alice", provider="google", actor="t", reason="t")
    assert failed.value.code == "oauth_reauth_needed" and failed.value.status == 409
    assert OAuthConnection.objects.get().status == "needs_reauth"
    [listed] = api.get("/api/connections", {"end_user": "alice"}).json()["connections"]
    assert listed["status"] == "needs_reauth"
    covered, needed = oauth_needs(client=api.client_obj, end_user="alice", server_slugs=[GMAIL])
    assert covered == {GMAIL: {"CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN"}}
    assert needed == [{"provider": "google", "mcp_servers": [GMAIL], "reason": "needs_reauth",
                       "scopes": sorted({"openid", "email", GMAIL_SCOPE}),
                       "credential_keys": [f"{GMAIL}:CLIENT_ID", f"{GMAIL}:CLIENT_SECRET", f"{GMAIL}:REFRESH_TOKEN"]}]
    # Authorizing again makes it active.
    oauth_server.refuse_refresh = False
    _connect(api, anon_api)
    assert OAuthConnection.objects.get().status == "active"
    assert oauth_needs(client=api.client_obj, end_user="alice", server_slugs=[GMAIL])[1] == []


def test_a_server_gets_the_tokens_its_rule_names(api, anon_api, oauth_server):
    _connect(api, anon_api)
    session = Session.objects.create(client=api.client_obj, end_user="alice")
    agent = Agent.objects.create(client=api.client_obj, session=session, end_user="alice")
    values = secrets_for_use(agent=agent, scope=GMAIL, actor=api.client_obj, reason="t")
    token = OAuthConnection.objects.get().token
    assert values == {"CLIENT_ID": "test-client-id", "CLIENT_SECRET": CLIENT_SECRET,
                      "REFRESH_TOKEN": token["refresh_token"]}
    # Another end user's agent of the same client has no connection: the start says so.
    bob = Agent.objects.create(client=api.client_obj, session=Session.objects.create(client=api.client_obj,
                                                                                     end_user="bob"), end_user="bob")
    with pytest.raises(ApplicationError) as missing:
        secrets_for_use(agent=bob, scope=GMAIL, actor=api.client_obj, reason="t")
    assert missing.value.code == "oauth_reauth_needed"


def test_delete_revokes_at_the_provider(api, anon_api, oauth_server):
    row = _connect(api, anon_api)
    token = OAuthConnection.objects.get().token
    response = api.delete(f"/api/connections/{row.pk}?end_user=alice")
    assert response.status_code == 200 and response.json()["revoked"] is True
    assert set(oauth_server.revoked) == {token["refresh_token"], token["access_token"]}
    assert not OAuthConnection.objects.exists()
    assert not oauth_server.access_token_works(token["access_token"])
    event = AuditEvent.objects.get(action="delete", object_type="oauth_connection")
    assert event.metadata == {"revoked": True} and event.end_user == "alice"


def test_another_client_or_end_user_cannot_see_use_or_delete(api, other_api, anon_api, oauth_server):
    row = _connect(api, anon_api)
    assert other_api.get("/api/connections", {"end_user": "alice"}).json() == {"connections": []}
    assert api.get("/api/connections", {"end_user": "bob"}).json() == {"connections": []}
    assert other_api.delete(f"/api/connections/{row.pk}?end_user=alice").status_code == 404
    assert api.delete(f"/api/connections/{row.pk}?end_user=bob").status_code == 404
    for client, end_user in ((other_api.client_obj, "alice"), (api.client_obj, "bob")):
        with pytest.raises(ApplicationError):
            token_for_use(client=client, end_user=end_user, provider="google", actor="t", reason="t")
    assert OAuthConnection.objects.filter(pk=row.pk).exists() and oauth_server.revoked == []


def test_listing_is_masked_and_no_token_is_stored_or_logged_in_plain_text(api, anon_api, oauth_server,
                                                                          log_capture):
    _connect(api, anon_api)
    OAuthConnection.objects.update(access_expires_at=timezone.now() - timedelta(seconds=5))
    token_for_use(client=api.client_obj, end_user="alice", provider="google", actor="t", reason="t")
    secrets = [value for answer in oauth_server.issued for key, value in answer.items()
               if key in ("access_token", "refresh_token")] + [CLIENT_SECRET]
    assert len(secrets) == 5
    response = api.get("/api/connections", {"end_user": "alice"})
    [listed] = response.json()["connections"]
    assert listed["kind"] == "oauth" and listed["service"] == "google"
    assert listed["identity"]["account"].startswith("ann@example.com (") and "..." in listed["identity"]["account"]
    dump = _database_text()
    for secret in secrets:
        assert secret not in response.content.decode()
        assert secret not in dump
    # The fake provider runs in this process; its own grant code logs the tokens it issues (the provider's logs,
    # not ours), so its records are left out. Our side, authlib's client and HTTP libraries included, must be clean.
    log_capture.records = [r for r in log_capture.records if not r.name.startswith("authlib.oauth2.rfc6749.grants")]
    log_capture.assert_clean(secrets)


def _database_text() -> str:
    """Every row of every table, as text (bytea as its bytes)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                chunks.append(" ".join(bytes(v).decode("latin-1") if isinstance(v, memoryview) else str(v)
                                       for v in row))
    return "\n".join(chunks)


def test_used_and_expired_links_are_purged(api, anon_api, oauth_server):
    _connect(api, anon_api)  # one used
    _start(api)
    _start(api)
    stale = OAuthState.objects.filter(used_at__isnull=True).order_by("pk").first()
    OAuthState.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert states_purge_expired() == 2
    assert OAuthState.objects.count() == 1


def test_google_authorized_user_file_is_written_privately_and_removed(api, anon_api, oauth_server):
    _connect(api, anon_api)
    token = token_for_use(client=api.client_obj, end_user="alice", provider="google", actor="t", reason="t")
    content = google_authorized_user(token)
    with generated_files_materialize({"GOOGLE_APPLICATION_CREDENTIALS": ("adc.json", content)}) as paths:
        path = paths["GOOGLE_APPLICATION_CREDENTIALS"]
        assert json.loads(path.read_text()) == {"type": "authorized_user", "client_id": "test-client-id",
                                                "client_secret": CLIENT_SECRET,
                                                "refresh_token": token.refresh_token}
        assert path.stat().st_mode & 0o777 == 0o600 and path.parent.parent.stat().st_mode & 0o777 == 0o700
    assert not path.exists() and not path.parent.parent.exists()


def test_values_pasted_before_the_app_was_registered_still_start_the_server(api, oauth_server):
    session = Session.objects.create(client=api.client_obj, end_user="alice")
    agent = Agent.objects.create(client=api.client_obj, session=session, end_user="alice")
    pasted = {"CLIENT_ID": "1-x.apps.googleusercontent.com", "CLIENT_SECRET": "pasted-secret-value",
              "REFRESH_TOKEN": "1//pasted-refresh-token-value"}
    credentials_store(client=api.client_obj, agent=agent, session=session, server=GMAIL, values=pasted,
                      actor=api.client_obj, reason="t").raise_for_errors()
    assert secrets_for_use(agent=agent, scope=GMAIL, actor=api.client_obj, reason="t") == pasted
