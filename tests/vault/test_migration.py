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
    assert (credential.value, credential.session_id, credential.agent_id, credential.end_user) == (
        "ghp_movedvalue123456789", session.pk, agent.pk, "")
    assert StoredFile.objects.get().content == b"{}"
    assert Conversation.objects.get().agent_id == agent.pk and Agent.objects.get().turns.count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('sessions_app_credential'), to_regclass('vault_credential')")
        assert cursor.fetchone() == (None, "vault_credential")
