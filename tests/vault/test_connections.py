"""Connected accounts: one entry per client, end user, server and key that sessions and agents refer to (no
copies); listed with masked identities, deleted as a whole (agents then name what is missing), reused by a later
session of the same client and end user; another client or end user sees, uses and deletes nothing."""

import pytest

from agents_app.models import Agent
from agents_app.services import agent_validate
from mcpagent.errors import NotFound
from mcpagent.vault.connections import connections_reuse
from mcpagent.vault.models import AuditEvent, Credential, VaultReference
from mcpagent.vault.store import (
    credential_delete, credential_values_for_use, credentials_extend_ttl, credentials_for_agent_delete,
    credentials_for_session_delete, credentials_missing,
)
from sessions_app.credentials import credentials_store
from sessions_app.models import Session
from tests.sessions_app.secretscan import assert_no_plaintext_in_db

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


# --- one entry, referenced: no copies ---

GITHUB_AGENT_CONFIG = {"mcpServers": {"github": {
    "command": "python", "args": ["-c", "pass"], "catalogue": "github-test",
    "env": {"GITHUB_TOKEN": {"$credential": "GITHUB_TOKEN"}},
}}}


def _agent(api, session, end_user="alice", status=Agent.Status.READY):
    agent = Agent.objects.create(client=api.client_obj, session=session, end_user=end_user, status=status,
                                 mcp_config=GITHUB_AGENT_CONFIG, model="passthrough")
    credentials_extend_ttl(client=api.client_obj, session=session, agent=agent, actor="test", reason="agent_create")
    return agent


def test_sessions_and_agents_refer_to_one_entry_and_a_new_value_reaches_all(api, alice):
    second = _session(api, "alice")
    connections_reuse(client=api.client_obj, session=second, servers=["github-test"], actor="test", reason="reuse")
    first_agent, second_agent = _agent(api, alice), _agent(api, second)
    entry = Credential.objects.get()
    assert set(entry.references.values_list("session_id", "agent_id")) == {
        (alice.pk, None), (second.pk, None), (None, first_agent.pk), (None, second_agent.pk)}
    # The value sent again in the second session is the one both agents now start with.
    rotated = "ghp_" + "z9Y8x7W6v5" * 4
    _store(api, second, rotated)
    assert Credential.objects.count() == 1 and VaultReference.objects.count() == 4
    for agent in (first_agent, second_agent):
        assert credential_values_for_use(client=api.client_obj, agent=agent, server="github-test", actor="test",
                                         reason="run") == {"GITHUB_TOKEN": rotated}
    # Each read through the vault is audited, naming the agent it was for.
    reads = AuditEvent.objects.filter(action="read_for_use", object_id=str(entry.pk))
    assert {event.agent_id for event in reads} == {first_agent.pk, second_agent.pk}
    [connection] = api.get("/api/connections", {"end_user": "alice"}).json()["connections"]
    assert sorted(connection["agents"]) == sorted([str(first_agent.pk), str(second_agent.pk)])
    # Deleting one agent leaves the entry to the others; deleting the last holders deletes it (audited).
    credentials_for_agent_delete(agent=first_agent, actor="test", reason="agent_delete")
    assert Credential.objects.get().pk == entry.pk
    for session in (alice, second):
        credentials_for_session_delete(session=session, actor="test", reason="session_delete")
    credentials_for_agent_delete(agent=second_agent, actor="test", reason="agent_delete")
    assert not Credential.objects.exists() and not VaultReference.objects.exists()
    assert AuditEvent.objects.get(action="delete").agent_id == second_agent.pk


def test_a_deleted_connection_is_named_by_the_agent_its_runs_and_its_validation(api, alice):
    agent = _agent(api, alice)
    assert api.get(f"/api/agents/{agent.pk}").json()["missing_credentials"] == []
    connection_id = api.get("/api/connections", {"end_user": "alice"}).json()["connections"][0]["id"]
    assert api.delete(f"/api/connections/{connection_id}?end_user=alice").status_code == 204

    missing = api.get(f"/api/agents/{agent.pk}").json()["missing_credentials"]
    assert missing == [{"server": "github", "credential": "GITHUB_TOKEN", "kind": "value",
                        "connection": "github-test"}]
    run = api.post(f"/api/agents/{agent.pk}/messages", {"message": "hi"}, format="json")
    assert run.status_code == 502, run.content
    error = run.json()["error"]
    assert (error["details"]["server"], error["details"]["reason"]) == ("github", "credential_missing")
    assert "GITHUB_TOKEN" in error["message"] and "connection was deleted" in error["message"]

    Agent.objects.filter(pk=agent.pk).update(status=Agent.Status.CREATING)
    validated = agent_validate(agent_id=agent.pk)
    assert validated.status == Agent.Status.FAILED
    assert (validated.error["server"], validated.error["code"]) == ("github", "credential_missing")
    assert "GITHUB_TOKEN" in validated.error["message"]


# --- tenants: another client or end user sees, uses and deletes nothing; no secret in plain text ---

def test_another_end_user_of_the_same_client_has_a_separate_connection(api, alice):
    bob_token = "ghp_" + "b0B1b2B3b4" * 4
    bobs = _session(api, "bob")
    bob_agent = _agent(api, bobs, end_user="bob")
    assert api.get(f"/api/agents/{bob_agent.pk}").json()["missing_credentials"][0]["credential"] == "GITHUB_TOKEN"
    _store(api, bobs, bob_token)
    credentials_extend_ttl(client=api.client_obj, session=bobs, agent=bob_agent, actor="test", reason="t")
    # Two entries: bob's value never replaced alice's, and each end user's agent uses only its own.
    assert Credential.objects.count() == 2
    assert credential_values_for_use(client=api.client_obj, agent=bob_agent, server="github-test", actor="test",
                                     reason="run") == {"GITHUB_TOKEN": bob_token}
    assert credential_values_for_use(client=api.client_obj, session=alice, server="github-test", actor="test",
                                     reason="run") == {"GITHUB_TOKEN": TOKEN}
    # Bob cannot delete alice's connection by its id, and deleting his own leaves alice's.
    alice_id = api.get("/api/connections", {"end_user": "alice"}).json()["connections"][0]["id"]
    bob_id = api.get("/api/connections", {"end_user": "bob"}).json()["connections"][0]["id"]
    assert alice_id != bob_id
    assert api.delete(f"/api/connections/{alice_id}?end_user=bob").status_code == 404
    assert api.delete(f"/api/connections/{bob_id}?end_user=bob").status_code == 204
    assert Credential.objects.get().end_user == "alice"


def test_another_client_cannot_use_a_connection_through_its_own_agent_or_ids(api, other_api, alice):
    entry = Credential.objects.get()
    theirs = Agent.objects.create(client=other_api.client_obj, end_user="alice", mcp_config=GITHUB_AGENT_CONFIG,
                                  status=Agent.Status.READY)
    assert credential_values_for_use(client=other_api.client_obj, agent=theirs, server="github-test",
                                     actor="test", reason="run") == {}
    assert other_api.get(f"/api/agents/{theirs.pk}").json()["missing_credentials"][0]["credential"] == "GITHUB_TOKEN"
    with pytest.raises(NotFound):
        credential_delete(client=other_api.client_obj, credential_id=entry.pk, actor="test", reason="t")
    with pytest.raises(NotFound):  # another client's session as the holder
        credential_values_for_use(client=other_api.client_obj, session=alice, server="github-test", actor="t",
                                  reason="t")
    assert Credential.objects.get().value == TOKEN


def test_a_connection_flow_leaves_no_token_in_plain_text_in_the_database_or_the_logs(api, log_capture):
    session = _session(api, "alice")
    _store(api, session, TOKEN)
    later = _session(api, "alice")
    connections_reuse(client=api.client_obj, session=later, servers=["github-test"], actor="test", reason="reuse")
    agent = _agent(api, later)
    credential_values_for_use(client=api.client_obj, agent=agent, server="github-test", actor="test", reason="run")
    api.get(f"/api/agents/{agent.pk}")
    api.get("/api/connections", {"end_user": "alice"})
    assert_no_plaintext_in_db([TOKEN])
    log_capture.assert_clean([TOKEN])


def test_a_clients_own_servers_of_one_name_keep_their_own_settings_per_agent(api):
    """A catalogue server is the end user's connection, shared; a server a client configured itself belongs to
    its agent: two agents' servers named "db" with different settings never replace each other's."""
    from agents_app.secrets import secrets_for_use, secrets_store

    first, second = (Agent.objects.create(client=api.client_obj, end_user="alice") for _ in range(2))
    for agent, url in ((first, "postgres://db-one/app"), (second, "postgres://db-two/app")):
        secrets_store(agent=agent, server_name="db", scope="custom/db", values={"DATABASE_URL": url}, actor="test",
                      reason="agent_create")
    assert [secrets_for_use(agent=agent, scope="custom/db", actor="test", reason="run")["DATABASE_URL"]
            for agent in (first, second)] == ["postgres://db-one/app", "postgres://db-two/app"]
    assert Credential.objects.count() == 2
