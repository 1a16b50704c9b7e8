"""MCP authorization for remote MCP servers, against a real protected MCP server (tests/fakes/protected_mcp.py)
and the authorization server its metadata names (tests/fakes/oauth_server.py), both on 127.0.0.1: discovery,
dynamic registration, the PKCE link and our callback, the token listing tools and a bad one refused, refresh,
revocation, isolation, and nothing in plain text."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone
from mcp.server.mcpserver import MCPServer

from agents_app import runtime
from agents_app.mcp_config import LaunchSpec
from mcpagent.errors import ApplicationError
from mcpagent.vault.mcp_auth_discovery import url_problem
from mcpagent.vault.mcp_auth_flow import mcp_authorization_start, mcp_token_for_use
from mcpagent.vault.models import McpAuthConnection, OAuthState
from mcpagent.vault.oauth_states import state_hash
from tests.agents_app.servers.remote import RemoteServer
from tests.fakes.oauth_server import callback_path, follow
from tests.fakes.protected_mcp import CALLBACK, ProtectedMcpServer, protected_mcp  # noqa: F401  (fixture)
from tests.sessions_app.conftest import log_capture  # noqa: F401  (shared fixture)
from tests.vault.test_oauth import _database_text


def _link(api, server, end_user="alice", client=None) -> str:
    return mcp_authorization_start(client=client or api.client_obj, end_user=end_user, session_id=None,
                                   server_url=server.url, redirect_uri=CALLBACK)


def _connect(api, anon_api, server, end_user="alice") -> McpAuthConnection:
    response = anon_api.get(callback_path(follow(_link(api, server, end_user))))
    assert response.status_code == 200, response.content
    return McpAuthConnection.objects.get(client=api.client_obj, end_user=end_user, server_url=server.url)


def _token(api, server, end_user="alice", client=None, **extra):
    return mcp_token_for_use(client=client or api.client_obj, end_user=end_user, server_url=server.url,
                             actor=api.client_obj, reason="test", **extra)


def _spec(server, authorization: str | None) -> LaunchSpec:
    headers = {"Authorization": authorization} if authorization else {}
    return LaunchSpec(name="notes", label="notes", transport="http", url=server.url, headers=headers)


def test_discovery_registers_once_and_the_link_is_pkce_bound_to_the_resource(api, protected_mcp):
    first, second = _link(api, protected_mcp), _link(api, protected_mcp)
    assert len(protected_mcp.oauth.registered) == 1  # the registration is kept (encrypted) and reused
    connection = McpAuthConnection.objects.get()
    assert connection.status == "pending" and connection.token is None
    assert connection.issuer == protected_mcp.oauth.url
    assert connection.registration["client_id"] in protected_mcp.oauth.registered
    assert connection.registration["token_endpoint_auth_method"] == "client_secret_post"
    for url in (first, second):
        query = parse_qs(urlsplit(url).query)
        assert url.startswith(protected_mcp.oauth.url + "/authorize?")
        assert query["code_challenge_method"] == ["S256"] and query["resource"] == [protected_mcp.url]
        assert query["scope"] == ["mcp"] and query["redirect_uri"] == [CALLBACK]
        state = query["state"][0]
        row = OAuthState.objects.get(state_hash=state_hash(state))
        assert row.provider == "mcp" and row.mcp_connection_id == connection.pk


def test_callback_stores_the_tokens_and_a_replayed_state_changes_nothing(api, anon_api, protected_mcp):
    location = follow(_link(api, protected_mcp))
    response = anon_api.get(callback_path(location))
    assert response.status_code == 200 and response.json()["server_url"] == protected_mcp.url
    connection = McpAuthConnection.objects.get()
    assert connection.status == "active" and connection.hint.endswith(connection.token["access_token"][-4:])
    issued = protected_mcp.oauth.tokens[-1]
    assert issued.resource == protected_mcp.url  # RFC 8707: the token is for this server only
    replay = anon_api.get(callback_path(location))
    assert replay.status_code == 400 and replay.json()["error"]["code"] == "invalid_state"
    assert McpAuthConnection.objects.get().token == connection.token


def test_the_token_lists_the_tools_and_a_bad_token_is_refused(api, anon_api, protected_mcp):
    _connect(api, anon_api, protected_mcp)
    token = _token(api, protected_mcp)
    results = runtime.validate_servers([_spec(protected_mcp, f"Bearer {token.access_token}")], timeout=10)
    assert results["notes"].ok and sorted(t["name"] for t in results["notes"].tools) == ["add_note", "list_notes"]
    bad = runtime.validate_servers([_spec(protected_mcp, "Bearer fake-at-not-issued")], timeout=10)["notes"]
    assert bad.error["code"] == "credentials_rejected"  # a token the user set themselves is theirs to fix
    none = runtime.validate_servers([_spec(protected_mcp, None)], timeout=10)["notes"]
    assert none.error["code"] == "authorization_required"


def test_an_expired_token_is_refreshed_for_the_same_resource_and_a_refused_refresh_needs_reauth(
        api, anon_api, protected_mcp):
    connection = _connect(api, anon_api, protected_mcp)
    McpAuthConnection.objects.update(access_expires_at=timezone.now() - timedelta(seconds=5))
    token = _token(api, protected_mcp)
    assert token.access_token != connection.token["access_token"]
    assert protected_mcp.oauth.tokens[-1].resource == protected_mcp.url
    assert protected_mcp.oauth.token_info(token.access_token) is not None
    protected_mcp.oauth.refuse_refresh = True
    assert _token(api, protected_mcp, rejected_access_token=token.access_token) is None
    assert McpAuthConnection.objects.get().status == "needs_reauth"


def test_the_connection_is_listed_masked_and_deleting_it_revokes_at_the_authorization_server(
        api, other_api, anon_api, protected_mcp):
    connection = _connect(api, anon_api, protected_mcp)
    refresh = connection.token["refresh_token"]
    [listed] = api.get("/api/connections", {"end_user": "alice"}).json()["connections"]
    assert listed["kind"] == "mcp_oauth" and listed["service"] == protected_mcp.url and listed["status"] == "active"
    assert listed["identity"]["account"] == connection.hint and connection.token["access_token"] not in str(listed)
    assert other_api.delete(f"/api/connections/{listed['id']}?end_user=alice").status_code == 404
    assert api.delete(f"/api/connections/{listed['id']}").status_code == 404  # another end user's
    assert api.delete(f"/api/connections/{listed['id']}?end_user=alice").status_code == 204
    assert refresh in protected_mcp.oauth.revoked and not McpAuthConnection.objects.exists()


def test_other_clients_and_end_users_get_no_token(api, other_api, anon_api, protected_mcp):
    _connect(api, anon_api, protected_mcp)
    assert _token(api, protected_mcp, end_user="bob") is None
    assert _token(api, protected_mcp, client=other_api.client_obj) is None
    assert _token(api, protected_mcp) is not None


def test_a_server_that_needs_no_authorization_gets_no_link(api, settings, db):
    settings.AGENT_ALLOW_HTTP_LOOPBACK = True
    with RemoteServer(MCPServer("open").streamable_http_app(stateless_http=True, json_response=True)) as server:
        assert _link(api, server) is None
    assert not McpAuthConnection.objects.exists()


def test_a_401_without_metadata_or_internal_addresses_are_refused(api, settings, db):
    settings.AGENT_ALLOW_HTTP_LOOPBACK = True
    with RemoteServer() as server:  # answers 401 with no WWW-Authenticate and no metadata
        with pytest.raises(ApplicationError) as caught:
            _link(api, server)
    assert caught.value.code == "mcp_authorization_unavailable" and caught.value.status == 502
    settings.AGENT_ALLOW_HTTP_LOOPBACK = False
    settings.DEBUG = False
    assert "internal address" in url_problem("https://127.0.0.1/.well-known/oauth-protected-resource")
    assert "internal address" in url_problem("https://10.1.2.3/token")
    assert url_problem("file:///etc/passwd") == "not an http(s) URL"


def test_no_token_or_client_secret_is_stored_or_logged_in_plain_text(api, anon_api, protected_mcp, log_capture):
    connection = _connect(api, anon_api, protected_mcp)
    McpAuthConnection.objects.update(access_expires_at=timezone.now() - timedelta(seconds=5))
    _token(api, protected_mcp)
    secrets = [value for answer in protected_mcp.oauth.issued for key, value in answer.items()
               if key in ("access_token", "refresh_token")] + [connection.registration["client_secret"]]
    assert len(secrets) == 5
    dump = _database_text()
    for secret in secrets:
        assert secret not in dump
    # The fake authorization server runs in this process and its grant code logs what it issues; ours must not.
    log_capture.records = [r for r in log_capture.records if not r.name.startswith("authlib.oauth2.rfc6749.grants")]
    log_capture.assert_clean(secrets)


def test_a_client_id_metadata_document_replaces_registration_where_the_server_takes_them(
        api, anon_api, settings, protected_mcp):
    document_url = "https://mcpagent.example/api/oauth/client-metadata"
    assert anon_api.get("/api/oauth/client-metadata").status_code == 404  # not published unless configured
    settings.MCP_OAUTH_CLIENT_METADATA_URL = document_url
    document = anon_api.get("/api/oauth/client-metadata").json()
    assert document["client_id"] == document_url and document["redirect_uris"] == [CALLBACK]
    assert document["token_endpoint_auth_method"] == "none" and "client_secret" not in document
    protected_mcp.oauth.client_documents[document_url] = document  # what the server fetches from that URL
    connection = _connect(api, anon_api, protected_mcp)
    assert protected_mcp.oauth.registered == {}  # no dynamic registration
    assert connection.registration["client_id"] == document_url and connection.status == "active"
    token = _token(api, protected_mcp)
    assert protected_mcp.oauth.token_info(token.access_token)["client_id"] == document_url


def test_staff_see_the_authorization_without_its_token_or_registration_and_deleting_revokes(
        api, anon_api, admin_client, protected_mcp):
    connection = _connect(api, anon_api, protected_mcp)
    hidden = [connection.token["access_token"], connection.token["refresh_token"],
              connection.registration["client_secret"]]
    for page in (admin_client.get(reverse("admin:vault_mcpauthconnection_changelist")),
                 admin_client.get(reverse("admin:vault_mcpauthconnection_change", args=[connection.pk]))):
        assert page.status_code == 200 and protected_mcp.url in page.content.decode()
        assert not [secret for secret in hidden if secret in page.content.decode()]
    response = admin_client.post(reverse("admin:vault_mcpauthconnection_delete", args=[connection.pk]),
                                 {"post": "yes"})
    assert response.status_code == 302 and not McpAuthConnection.objects.exists()
    assert connection.token["refresh_token"] in protected_mcp.oauth.revoked


def test_metadata_for_another_resource_or_from_another_issuer_is_refused(api, settings, protected_mcp):
    with ProtectedMcpServer(protected_mcp.oauth, resource_path="/other/mcp") as elsewhere:
        with pytest.raises(ApplicationError) as caught:
            _link(api, elsewhere)
    assert caught.value.code == "mcp_authorization_unavailable" and "another resource" in caught.value.message
    protected_mcp.oauth.issuer = "https://impostor.example.com"
    with pytest.raises(ApplicationError) as caught:
        _link(api, protected_mcp)
    assert "another issuer" in caught.value.message
    assert protected_mcp.oauth.registered == {} and not OAuthState.objects.exists()
