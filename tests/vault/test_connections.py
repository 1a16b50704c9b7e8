"""Connected accounts: listed per client and end user with masked identities, deleted as a whole, reused by a
later session of the same client and end user; another client or end user sees, uses and deletes nothing."""

import pytest

from agents_app.models import Agent
from mcpagent.vault.connections import connections_reuse
from mcpagent.vault.models import AuditEvent, Credential
from mcpagent.vault.store import credential_values_for_use, credentials_missing
from sessions_app.credentials import credentials_store
from sessions_app.models import Session

TOKEN = "ghp_" + "a1B2c3D4e5" * 4


def _session(api, end_user=""):
    return Session.objects.create(client=api.client_obj, end_user=end_user)


def _store(api, session, value, server="github-test", key="GITHUB_TOKEN"):
    credentials_store(client=api.client_obj, session=session, server=server, values={key: value},
                      actor=api.client_obj, reason="test").raise_for_errors()


@pytest.fixture
def alice(api):
    session = _session(api, "alice")
    _store(api, session, TOKEN)
    return session


def test_list_shows_service_kind_masked_identity_never_the_value(api, alice):
    response = api.get("/api/connections", {"end_user": "alice"})
    assert response.status_code == 200
    [connection] = response.json()["connections"]
    assert connection["service"] == "github-test" and connection["kind"] == "api_key"
    assert connection["identity"] == {"GITHUB_TOKEN": Credential.objects.get().hint}
    assert connection["identity"]["GITHUB_TOKEN"].endswith(TOKEN[-4:]) and len(connection["identity"]["GITHUB_TOKEN"]) < 16
    assert connection["status"] == "active" and connection["expires_at"] is not None
    assert TOKEN not in response.content.decode()
    # Other end users (and the client's own calls without one) see nothing of alice's.
    assert api.get("/api/connections", {"end_user": "bob"}).json() == {"connections": []}
    assert api.get("/api/connections").json() == {"connections": []}


def test_another_client_cannot_see_or_delete(api, other_api, alice):
    connection_id = api.get("/api/connections", {"end_user": "alice"}).json()["connections"][0]["id"]
    assert other_api.get("/api/connections", {"end_user": "alice"}).json() == {"connections": []}
    response = other_api.delete(f"/api/connections/{connection_id}?end_user=alice")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api.delete(f"/api/connections/{connection_id}?end_user=bob").status_code == 404
    assert api.delete("/api/connections/not-a-uuid?end_user=alice").status_code == 404
    assert Credential.objects.count() == 1


def test_invalid_end_user_is_400(api):
    response = api.get("/api/connections", {"end_user": "x" * 201})
    assert response.status_code == 400
    assert api.get("/api/connections", {"end_user": "bad user\n"}).status_code == 400


def test_delete_removes_every_row_of_the_service_audited_and_agents_lose_it(api, alice):
    agent = Agent.objects.create(client=api.client_obj, session=alice, end_user="alice")
    connection_id = api.get("/api/connections", {"end_user": "alice"}).json()["connections"][0]["id"]
    assert api.delete(f"/api/connections/{connection_id}?end_user=alice").status_code == 204
    assert not Credential.objects.exists()
    [event] = AuditEvent.objects.filter(action="delete")
    assert (event.end_user, event.reason, event.metadata["connection"]) == ("alice", "connection_delete", connection_id)
    assert credential_values_for_use(client=api.client_obj, session=alice, agent=agent, server="github-test",
                                     actor="test", reason="t") == {}
    assert api.delete(f"/api/connections/{connection_id}?end_user=alice").status_code == 404


def test_a_later_session_of_the_same_end_user_reuses_the_connection(api, alice):
    requirement = [{"mcp_server": "github-test", "credential_key": "GITHUB_TOKEN"}]
    second = _session(api, "alice")
    assert credentials_missing(client=api.client_obj, session=second, requirements=requirement) == requirement
    reused = connections_reuse(client=api.client_obj, session=second, servers=["github-test"], actor="test",
                               reason="connection_reuse")
    assert reused == {"github-test": ["GITHUB_TOKEN"]}
    assert credentials_missing(client=api.client_obj, session=second, requirements=requirement) == []
    assert credential_values_for_use(client=api.client_obj, session=second, server="github-test", actor="test",
                                     reason="t") == {"GITHUB_TOKEN": TOKEN}
    # No copy: both sessions refer to the one entry, and the reuse is audited on it.
    entry = Credential.objects.get()
    assert set(entry.references.values_list("session_id", flat=True)) == {alice.pk, second.pk}
    event = AuditEvent.objects.get(reason="connection_reuse")
    assert (event.action, event.object_id, event.session_id) == ("update", str(entry.pk), second.pk)
    assert event.metadata["reused_by_session"] == str(second.pk)
    # Running it again references nothing more; the connection is still one entry.
    assert connections_reuse(client=api.client_obj, session=second, servers=["github-test"], actor="test",
                             reason="connection_reuse") == {}
    assert len(api.get("/api/connections", {"end_user": "alice"}).json()["connections"]) == 1


def test_other_end_users_and_clients_reuse_nothing(api, other_api, alice):
    for session in (_session(api, "bob"), _session(api), _session(other_api, "alice")):
        client = api.client_obj if session.client_id == api.client_obj.pk else other_api.client_obj
        assert connections_reuse(client=client, session=session, servers=["github-test"], actor="test",
                                 reason="connection_reuse") == {}
        assert credential_values_for_use(client=client, session=session, server="github-test", actor="test",
                                         reason="t") == {}


def test_a_session_keeps_its_end_user_in_chat(api):
    session = _session(api, "alice")
    response = api.post("/api/chat", {"message": "hello", "session_id": str(session.pk), "end_user": "bob"},
                        format="json")
    assert response.status_code == 404
    response = api.post("/api/chat", {"message": "hello", "end_user": "bad user"}, format="json")
    assert response.status_code == 400
