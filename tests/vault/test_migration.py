"""The move of credentials, files, audit trail and turns into their new apps keeps every row of an existing
database: rows written under the old layout (sessions_app models with foreign keys to sessions and agents) are
read back through the new models after migrating forward."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

OLD = [("sessions_app", "0002_auditevent_credential_storedfile"), ("agents_app", "0004_agent_schedule")]


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_move_survive_it():
    executor = MigrationExecutor(connection)
    executor.migrate([*OLD, ("vault", None)])
    executor.loader.build_graph()
    old = executor.loader.project_state(OLD).apps
    client = old.get_model("mcpagent", "ApiClient").objects.create(name="mig", key_hash="0" * 64, key_prefix="x")
    session = old.get_model("sessions_app", "Session").objects.create(client_id=client.pk)
    agent = old.get_model("agents_app", "Agent").objects.create(client_id=client.pk, session=session, mcp_config={})
    old.get_model("sessions_app", "Credential").objects.create(
        client_id=client.pk, session=session, agent=agent, server="github", key="GITHUB_TOKEN",
        value="ghp_movedvalue123456789", hint="ghp_...6789")
    old.get_model("sessions_app", "StoredFile").objects.create(
        client_id=client.pk, session=session, server="gdrive", key="CREDS", filename="c.json",
        content_type="application/json", size=2, fingerprint="x", content=b"{}")
    old.get_model("sessions_app", "Conversation").objects.create(agent=agent, role="user", message="hello")

    call_command("migrate", verbosity=0)

    from agents_app.models import Agent, Conversation
    from mcpagent.vault.models import Credential, StoredFile

    credential = Credential.objects.get()
    assert (credential.value, credential.end_user) == ("ghp_movedvalue123456789", "")
    assert set(credential.references.values_list("session_id", "agent_id")) == {(session.pk, None), (None, agent.pk)}
    assert StoredFile.objects.get().content == b"{}"
    assert Conversation.objects.get().agent_id == agent.pk and Agent.objects.get().turns.count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('sessions_app_credential'), to_regclass('vault_credential')")
        assert cursor.fetchone() == (None, "vault_credential")


BEFORE_REFERENCES = [("vault", "0002_credential_verification")]


@pytest.mark.django_db(transaction=True)
def test_copies_become_one_entry_that_every_holder_refers_to_and_come_back_going_back():
    """Copies of one (client, end user, server, key) held by several sessions and agents are merged into one
    entry with the newest live value; each holder refers to it; each merged copy is audited; going back gives
    each extra holder its copy again."""
    from datetime import timedelta

    from django.utils import timezone

    executor = MigrationExecutor(connection)
    before = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "vault"] + BEFORE_REFERENCES
    executor.migrate(before)
    executor.loader.build_graph()
    old = executor.loader.project_state(before).apps
    client = old.get_model("mcpagent", "ApiClient").objects.create(name="mig", key_hash="1" * 64, key_prefix="y")
    Session = old.get_model("sessions_app", "Session")
    Agent = old.get_model("agents_app", "Agent")
    first, second, third = (Session.objects.create(client_id=client.pk, end_user="alice") for _ in range(3))
    bobs = Session.objects.create(client_id=client.pk, end_user="bob")
    agent = Agent.objects.create(client_id=client.pk, session=first, end_user="alice", mcp_config={})
    OldCredential = old.get_model("vault", "Credential")
    now = timezone.now()

    def copy(value, session, agent_id=None, expires_at=None, end_user="alice"):
        row = OldCredential.objects.create(client_id=client.pk, end_user=end_user, session_id=session.pk,
                                           agent_id=agent_id, server="github", key="GITHUB_TOKEN", value=value,
                                           hint="ghp_...", expires_at=expires_at)
        return row

    copy("ghp_adoptedbyagent0001", first, agent.pk)
    copy("ghp_newerinsession0002", second, expires_at=now + timedelta(hours=3))
    expired = copy("ghp_newestbutexpired03", third, expires_at=now - timedelta(hours=1))
    bob = copy("ghp_bobsowntoken000004", bobs, end_user="bob")
    # Two agents' own servers of one name, with different settings, stay apart (per agent from now on).
    other_agent = Agent.objects.create(client_id=client.pk, end_user="alice", mcp_config={})
    for holder, url in ((agent, "postgres://a/one"), (other_agent, "postgres://b/two")):
        OldCredential.objects.create(client_id=client.pk, end_user="alice", agent_id=holder.pk, server="custom/db",
                                     key="DATABASE_URL", value=url, hint="set")
    old.get_model("vault", "StoredFile").objects.create(
        client_id=client.pk, end_user="alice", session_id=first.pk, server="", key="", filename="a.txt",
        content_type="text/plain", size=1, fingerprint="x", content=b"a")

    call_command("migrate", "vault", verbosity=0)

    from mcpagent.vault.models import AuditEvent, Credential, StoredFile

    custom = {row.server: row.value for row in Credential.objects.filter(key="DATABASE_URL")}
    assert custom == {f"custom/{agent.pk}/db": "postgres://a/one", f"custom/{other_agent.pk}/db": "postgres://b/two"}
    alice = Credential.objects.get(end_user="alice", key="GITHUB_TOKEN")
    assert alice.value == "ghp_newerinsession0002" and alice.expires_at is None  # newest live; the agent's lifetime
    assert set(alice.references.values_list("session_id", "agent_id")) == {
        (first.pk, None), (second.pk, None), (None, agent.pk)}  # the expired copy's session lost it, as before
    assert Credential.objects.get(end_user="bob").pk == bob.pk
    assert StoredFile.objects.get().references.get().session_id == first.pk
    merged = AuditEvent.objects.filter(reason="merged_into_entry")
    assert merged.count() == 2 and str(expired.pk) in set(merged.values_list("object_id", flat=True))
    assert {event.metadata["kept"] for event in merged} == {str(alice.pk)}

    executor = MigrationExecutor(connection)
    executor.migrate(before)
    executor.loader.build_graph()
    back = executor.loader.project_state(before).apps.get_model("vault", "Credential")
    assert {(row.server, row.agent_id, row.value) for row in back.objects.filter(key="DATABASE_URL")} == {
        ("custom/db", agent.pk, "postgres://a/one"), ("custom/db", other_agent.pk, "postgres://b/two")}
    rows = back.objects.filter(end_user="alice", key="GITHUB_TOKEN")
    assert {row.session_id for row in rows} == {first.pk, second.pk} and len(rows) == 2
    assert sorted(str(row.agent_id) for row in rows) == sorted([str(agent.pk), "None"])
    assert {row.value for row in rows} == {"ghp_newerinsession0002"}
    call_command("migrate", verbosity=0)
