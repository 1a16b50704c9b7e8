"""sessions_app.credentials: validation before storage, all-or-nothing, use, lifetime, audit, admin."""

from datetime import timedelta

import pytest
from django.utils import timezone

from agents_app.models import Agent
from mcpagent.errors import ApplicationError
from registry_app.models import CredentialRequirement, McpServer
from mcpagent.vault import formats
from sessions_app.credentials import (
    Actor,
    credential_delete,
    credential_values_for_use,
    credentials_collected,
    credentials_extend_ttl,
    credentials_for_session_delete,
    credentials_masked,
    credentials_missing,
    credentials_record_validation,
    credentials_store,
)
from mcpagent.vault.models import AuditEvent, Credential
from tests.sessions_app.secretscan import fake_secrets


def _store(api, session, server, values, **kwargs):
    return credentials_store(
        client=api.client_obj, session=session, server=server, values=values, actor=api.client_obj,
        reason="test", **kwargs,
    )


def test_valid_provider_values_are_stored_masked_and_audited(api, session_x):
    values = fake_secrets()
    result = _store(api, session_x, "everything", values)
    assert result.ok and not result.errors
    assert {entry["key"] for entry in result.stored} == set(values)
    rows = {row.key: row for row in Credential.objects.filter(references__session_id=session_x.pk)}
    assert rows["SLACK_BOT_TOKEN"].hint == f"xoxb-...{values['SLACK_BOT_TOKEN'][-4:]}"
    assert rows["GITHUB_PERSONAL_ACCESS_TOKEN"].hint.startswith("ghp_...")
    assert rows["DB_PASSWORD"].hint == "set"  # short values show nothing
    for key, value in values.items():
        assert rows[key].value == value
        assert value not in rows[key].hint
    events = AuditEvent.objects.filter(session_id=session_x.pk, action="create", object_type="credential")
    assert events.count() == len(values)
    event = events.get(key="SLACK_BOT_TOKEN")
    assert (event.actor_type, event.actor_id, event.actor_label) == ("client", str(api.client_obj.pk), "client-x")
    assert event.reason == "test" and event.server == "everything" and event.client_id == api.client_obj.pk
    for e in events:
        assert not any(v in repr(e.metadata) for v in values.values())


def test_one_bad_value_stores_nothing_and_names_each_failing_key(api, session_x):
    good = fake_secrets()
    values = {
        "SLACK_BOT_TOKEN": good["SLACK_BOT_TOKEN"],
        "GITHUB_TOKEN": "xoxb-this-is-not-github-" + "q" * 20,
        "OPENAI_API_KEY": "   ",
        "AWS_ACCESS_KEY_ID": "AKIAshort",
        "WEBHOOK_URL": "not a url",
        "ADMIN_EMAIL": "nobody-at-example",
        "NOTION_TOKEN": "secret_tooshort",
    }
    before = (Credential.objects.count(), AuditEvent.objects.count())
    result = _store(api, session_x, "mixed", values)
    assert not result.ok
    assert set(result.errors) == set(values) - {"SLACK_BOT_TOKEN"}
    assert "GitHub" in result.errors["GITHUB_TOKEN"]
    assert result.errors["OPENAI_API_KEY"] == "is empty"
    assert "AWS access key id" in result.errors["AWS_ACCESS_KEY_ID"]
    assert "URL" in result.errors["WEBHOOK_URL"] and "email" in result.errors["ADMIN_EMAIL"]
    assert "Notion" in result.errors["NOTION_TOKEN"]
    for reason in result.errors.values():
        assert not any(v.strip() and v.strip() in reason for v in values.values())
    assert (Credential.objects.count(), AuditEvent.objects.count()) == before
    with pytest.raises(ApplicationError) as excinfo:
        result.raise_for_errors()
    assert excinfo.value.status == 400 and excinfo.value.code == "invalid_credentials"
    assert set(excinfo.value.details["errors"]) == set(result.errors)
    assert good["SLACK_BOT_TOKEN"] not in repr(excinfo.value.details) + excinfo.value.message


def test_whitespace_is_trimmed_and_limits_apply(api, session_x, settings):
    token = fake_secrets()["SLACK_BOT_TOKEN"]
    assert _store(api, session_x, "slack", {"SLACK_BOT_TOKEN": f"  {token}\n"}).ok
    assert Credential.objects.get(references__session_id=session_x.pk, key="SLACK_BOT_TOKEN").value == token
    settings.CREDENTIAL_VALUE_MAX_CHARS = 50
    result = _store(api, session_x, "x", {"LONG": "a" * 51, "NUL": "abc\x00def", "RTL": "abc\u202edef",
                                           "TYPE": {"nested": "object"}, "bad key!": "v"})
    assert result.errors == {
        "LONG": "is longer than 50 characters",
        "NUL": "contains control or invisible characters",
        "RTL": "contains control or invisible characters",
        "TYPE": "must be a string",
        "<name #5>": "is not a valid credential name (letters, digits, _ . -; at most 200; not a secret value)",
    }


def test_a_value_pasted_as_a_name_is_neither_stored_nor_echoed(api, session_x, log_capture):
    token = fake_secrets()["SLACK_BOT_TOKEN"]
    result = _store(api, session_x, "custom-server", {token: "SLACK_BOT_TOKEN"})
    assert list(result.errors) == ["<name #1>"] and token not in repr(result.errors)
    assert not Credential.objects.exists()
    log_capture.assert_clean([token])


def test_too_many_values_for_one_server_are_refused(api, session_x):
    result = _store(api, session_x, "x", {f"KEY_{i}": "v" for i in range(65)})
    assert result.errors == {"*": "at most 64 values per server"} and not Credential.objects.exists()


def test_numbers_and_booleans_become_strings_and_pem_newlines_are_kept(api, session_x):
    pem = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7\n-----END PRIVATE KEY-----"
    assert _store(api, session_x, "x", {"PORT": 8080, "DEBUG": True, "PRIVATE_KEY": pem}).ok
    values = credential_values_for_use(client=api.client_obj, session=session_x, server="x", actor=api.client_obj,
                                       reason="test")
    assert values == {"PORT": "8080", "DEBUG": "true", "PRIVATE_KEY": pem}
    assert Credential.objects.get(references__session_id=session_x.pk, key="PRIVATE_KEY").hint == "set"


def test_catalogue_requirements_restrict_keys_and_apply_patterns(api, session_x):
    server = McpServer.objects.create(slug="acme-mcp-test", name="Acme")
    CredentialRequirement.objects.create(server=server, key="ACME_KEY", pattern=r"^acme_[0-9a-f]{16}$", required=True)
    CredentialRequirement.objects.create(server=server, key="ACME_REGION", choices=["eu", "us"])
    CredentialRequirement.objects.create(server=server, key="ACME_TIMEOUT", format="number")
    bad = _store(api, session_x, "acme-mcp-test", {"ACME_KEY": "acme_XYZ", "ACME_REGION": "mars",
                                                   "ACME_TIMEOUT": "soon", "ACME_TYPO": "x"})
    assert bad.errors["ACME_KEY"] == "does not have the expected format for this setting"
    assert bad.errors["ACME_REGION"] == "must be one of: eu, us"
    assert bad.errors["ACME_TIMEOUT"] == "must be a number"
    assert bad.errors["ACME_TYPO"].startswith("is not a setting of acme-mcp-test (expected one of: ACME_KEY")
    assert _store(api, session_x, "acme-mcp-test", {"ACME_KEY": "acme_0123456789abcdef", "ACME_REGION": "eu"}).ok
    # Requirements passed by the caller add to the catalogue's (and may add a pattern of their own).
    extra = _store(api, session_x, "acme-mcp-test", {"ACME_EXTRA": "nope"},
                   requirements=[{"credential_key": "ACME_EXTRA", "pattern": r"^\d+$"}])
    assert extra.errors == {"ACME_EXTRA": "does not have the expected format for this setting"}


def test_curated_patterns_apply_to_keys_only_credinfo_knows():
    from registry_app.credinfo import match_credential

    curated = match_credential(key="TELEGRAM_BOT_TOKEN")
    if not (curated and curated.get("pattern")):
        pytest.skip("config/credinfo.json has no pattern for TELEGRAM_BOT_TOKEN")
    reason = formats.check_value("TELEGRAM_BOT_TOKEN", "not-a-bot-token", None, curated=curated)
    assert reason == f"does not have the format {curated['service_name']} uses for this setting"
    assert formats.check_value("TELEGRAM_BOT_TOKEN", "1000000000:AA" + "x" * 33, None, curated=curated) is None


def test_catastrophic_catalogue_patterns_are_not_applied():
    assert formats.check_value("X", "a" * 5000 + "!", {"pattern": r"^(a+)+$"}) is None


def test_unknown_servers_accept_any_well_formed_key(api, session_x):
    assert _store(api, session_x, "custom-server", {"WHATEVER_SETTING": "some value"}).ok


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("SLACK_BOT_TOKEN", "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx", True),
        ("SLACK_BOT_TOKEN", "xoxp-123456789012-123456789012-abcdefghijklmnopqrstuvwx", False),
        ("SLACK_USER_TOKEN", "xoxp-1234567890-1234567890-1234567890123-0123456789abcdef0123456789abcdef", True),
        ("SLACK_BOT_TOKEN", "xoxe.xoxb-1-abcdefghijklmnopqrstuvwxyz0123456789", True),
        ("GITHUB_PERSONAL_ACCESS_TOKEN", "ghp_" + "a1" * 18, True),
        ("GITHUB_TOKEN", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", True),
        ("GITHUB_TOKEN", "ghp_short", False),
        ("OPENAI_API_KEY", "sk-proj-" + "x" * 40, True),
        ("OPENAI_API_KEY", "pk-" + "x" * 40, False),
        ("ANTHROPIC_API_KEY", "sk-ant-api03-" + "x" * 40, True),
        ("NOTION_API_KEY", "secret_" + "a" * 43, True),
        ("NOTION_TOKEN", "ntn_" + "b" * 46, True),
        ("STRIPE_SECRET_KEY", "sk_live_" + "c" * 24, True),
        ("STRIPE_SECRET_KEY", "pk_live_" + "c" * 24, False),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_" + "c" * 24, True),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", True),
        ("AWS_ACCESS_KEY_ID", "akiaiosfodnn7example", False),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", True),
        ("API_BASE_URL", "https://api.example.com/v1", True),
        ("DATABASE_URL", "postgres://user:pw@db.example.com:5432/app", True),
        ("API_BASE_URL", "https:///nohost", False),
        ("API_BASE_URL", "example.com", False),
        ("NOTIFY_EMAIL", "ops@example.com", True),
        ("NOTIFY_EMAIL", "ops@", False),
        ("CONFIG_PATH", "/home/me/config.json", True),
        ("CONFIG_PATH", "../../etc/passwd", False),
        ("SOME_SETTING", "anything at all", True),
    ],
)
def test_builtin_formats(key, value, ok):
    assert (formats.check_value(key, value, None) is None) is ok


def test_masking():
    assert formats.mask("xoxb-123456789012-abcdefghijklmnopf3a9") == "xoxb-...f3a9"
    assert formats.mask("sk-proj-abcdefghijklmnopqrstuvwxyz1234") == "sk-proj-...1234"
    assert formats.mask("0123456789abcdefghijklmn") == "...klmn"
    assert formats.mask("short-password") == "set"
    assert formats.mask("-----BEGIN PRIVATE KEY-----\nabcdefghijklmnopqrstuvwxyz") == "set"


def test_update_replaces_the_value_and_is_audited_as_update(api, session_x):
    first, second = fake_secrets()["SLACK_BOT_TOKEN"], fake_secrets()["SLACK_BOT_TOKEN"]
    _store(api, session_x, "slack", {"SLACK_BOT_TOKEN": first})
    result = _store(api, session_x, "slack", {"SLACK_BOT_TOKEN": second})
    assert result.stored[0]["action"] == "update"
    assert Credential.objects.filter(references__session_id=session_x.pk).count() == 1
    assert Credential.objects.get(references__session_id=session_x.pk).value == second
    assert list(AuditEvent.objects.filter(key="SLACK_BOT_TOKEN").order_by("at").values_list("action", flat=True)) == [
        "create", "update"
    ]


def test_values_for_use_are_audited_and_stamp_last_used(api, session_x):
    secrets = fake_secrets()
    _store(api, session_x, "github", {"GITHUB_PERSONAL_ACCESS_TOKEN": secrets["GITHUB_PERSONAL_ACCESS_TOKEN"]})
    _store(api, session_x, "slack", {"SLACK_BOT_TOKEN": secrets["SLACK_BOT_TOKEN"]})
    values = credential_values_for_use(client=api.client_obj, session=session_x, server="github",
                                       actor=Actor.system("agent-runner"), reason="agent_run")
    assert values == {"GITHUB_PERSONAL_ACCESS_TOKEN": secrets["GITHUB_PERSONAL_ACCESS_TOKEN"]}
    event = AuditEvent.objects.get(action="read_for_use")
    assert (event.actor_type, event.actor_label, event.reason, event.server) == (
        "system", "agent-runner", "agent_run", "github"
    )
    row = Credential.objects.get(key="GITHUB_PERSONAL_ACCESS_TOKEN")
    assert row.last_used_at is not None
    assert Credential.objects.get(key="SLACK_BOT_TOKEN").last_used_at is None


def test_expired_values_are_neither_used_nor_counted_as_collected(api, session_x):
    _store(api, session_x, "svc", {"A_SETTING": "value-a", "B_SETTING": "value-b"})
    Credential.objects.filter(key="A_SETTING").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert credential_values_for_use(client=api.client_obj, session=session_x, server="svc", actor=api.client_obj,
                                     reason="t") == {"B_SETTING": "value-b"}
    assert credentials_collected(session=session_x) == {"svc": {"B_SETTING"}}
    missing = credentials_missing(client=api.client_obj, session=session_x, requirements=[
        {"mcp_server": "svc", "credential_key": "A_SETTING", "description": "a"},
        {"mcp_server": "svc", "credential_key": "B_SETTING", "description": "b"},
        {"mcp_server": "svc", "credential_key": "C_OPTIONAL", "required": False},
    ])
    assert missing == [{"mcp_server": "svc", "credential_key": "A_SETTING", "description": "a"}]


def test_session_ttl_default_and_agent_lifetime(api, session_x, agent_x, settings):
    settings.CREDENTIAL_TTL_HOURS = 24
    _store(api, session_x, "svc", {"TOKEN_A": "value-a-1234"})
    row = Credential.objects.get(key="TOKEN_A")
    assert timedelta(hours=23, minutes=59) < row.expires_at - timezone.now() <= timedelta(hours=24)
    counts = credentials_extend_ttl(client=api.client_obj, session=session_x, agent=agent_x, actor=api.client_obj,
                                    reason="agent_create")
    assert counts == {"credentials": 1, "files": 0}
    row.refresh_from_db()
    assert row.expires_at is None
    assert set(row.references.values_list("session_id", "agent_id")) == {(session_x.pk, None), (None, agent_x.pk)}
    assert AuditEvent.objects.filter(action="update", metadata__adopted_by_agent=str(agent_x.pk)).count() == 1
    # Once adopted the agent finds it by itself.
    assert credential_values_for_use(client=api.client_obj, agent=agent_x, server="svc", actor=api.client_obj,
                                     reason="run") == {"TOKEN_A": "value-a-1234"}
    # A second agent refers to the same entry: no copy.
    settings.AGENT_CREDENTIAL_TTL_DAYS = 30
    agent2 = Agent.objects.create(client=api.client_obj, session=session_x, name="second")
    credentials_extend_ttl(client=api.client_obj, session=session_x, agent=agent2, actor=api.client_obj, reason="t")
    assert Credential.objects.get(references__agent_id=agent2.pk).pk == row.pk and Credential.objects.count() == 1
    assert AuditEvent.objects.filter(action="update", metadata__adopted_by_agent=str(agent2.pk)).count() == 1
    # With AGENT_CREDENTIAL_TTL_DAYS, an entry only agents of that lifetime use lives that long.
    _store(api, session_x, "svc", {"TOKEN_C": "value-c-1234"})
    credentials_extend_ttl(client=api.client_obj, session=session_x, agent=agent2, actor=api.client_obj, reason="t")
    entry = Credential.objects.get(key="TOKEN_C")
    assert timedelta(days=29) < entry.expires_at - timezone.now() <= timedelta(days=30)


def test_an_agent_being_created_uses_the_session_values_and_a_value_sent_for_it_replaces_the_entry(
        api, session_x, agent_x):
    _store(api, session_x, "svc", {"TOKEN_A": "session-value-a", "TOKEN_B": "session-value-b"})
    credentials_store(client=api.client_obj, session=session_x, agent=agent_x, server="svc",
                      values={"TOKEN_B": "agent-value-b"}, actor=api.client_obj, reason="agent_create")
    assert credential_values_for_use(client=api.client_obj, session=session_x, agent=agent_x, server="svc",
                                     actor=api.client_obj, reason="validate") == {
        "TOKEN_A": "session-value-a", "TOKEN_B": "agent-value-b",
    }
    # Without the session the agent only has what it refers to; the session sees the new value (one entry).
    assert credential_values_for_use(client=api.client_obj, agent=agent_x, server="svc", actor=api.client_obj,
                                     reason="run") == {"TOKEN_B": "agent-value-b"}
    assert credential_values_for_use(client=api.client_obj, session=session_x, server="svc", actor=api.client_obj,
                                     reason="t")["TOKEN_B"] == "agent-value-b"
    assert Credential.objects.filter(key="TOKEN_B").count() == 1


def test_masked_listing_and_deletes(api, session_x, agent_x):
    secrets = fake_secrets()
    _store(api, session_x, "svc", {"OPENAI_API_KEY": secrets["OPENAI_API_KEY"], "OTHER": "x-value"})
    listing = credentials_masked(client=api.client_obj, session=session_x)
    assert [(item["key"], item["hint"]) for item in listing] == [
        ("OPENAI_API_KEY", f"sk-proj-...{secrets['OPENAI_API_KEY'][-4:]}"), ("OTHER", "set")
    ]
    assert secrets["OPENAI_API_KEY"] not in repr(listing)
    credential_delete(client=api.client_obj, credential_id=listing[1]["id"], actor=api.client_obj, reason="user")
    assert AuditEvent.objects.filter(action="delete", key="OTHER", reason="user").exists()
    credentials_store(client=api.client_obj, session=session_x, agent=agent_x, server="svc",
                      values={"AGENT_ONLY": "kept-value"}, actor=api.client_obj, reason="t")
    counts = credentials_for_session_delete(client=api.client_obj, session=session_x, actor=api.client_obj,
                                            reason="session_delete")
    assert counts == {"credentials": 1, "files": 0}
    assert list(Credential.objects.values_list("key", flat=True)) == ["AGENT_ONLY"]  # the agent's stays


def test_validation_outcome_is_audited(api, session_x):
    _store(api, session_x, "svc", {"TOKEN_A": "value-a-1234"})
    credentials_record_validation(client=api.client_obj, session=session_x, server="svc", accepted=False,
                                  actor=Actor.system("validator"), reason="validate", details={"error": "http_401"})
    event = AuditEvent.objects.get(action="validate")
    assert event.metadata == {"accepted": False, "error": "http_401"} and event.key == "TOKEN_A"


def test_a_session_or_agent_is_required(api):
    with pytest.raises(ApplicationError) as excinfo:
        credentials_store(client=api.client_obj, server="s", values={"A": "b"}, actor=api.client_obj, reason="t")
    assert excinfo.value.code == "owner_required"


def test_admin_shows_names_and_hints_never_values_and_audit_is_read_only(api, session_x, staff_client):
    secrets = fake_secrets()
    _store(api, session_x, "svc", {"OPENAI_API_KEY": secrets["OPENAI_API_KEY"], "DB_PASSWORD": secrets["DB_PASSWORD"]})
    row = Credential.objects.get(key="OPENAI_API_KEY")
    pages = [
        staff_client.get("/admin/vault/credential/"),
        staff_client.get(f"/admin/vault/credential/{row.pk}/change/"),
        staff_client.get("/admin/vault/auditevent/"),
        staff_client.get(f"/admin/vault/auditevent/{AuditEvent.objects.first().pk}/change/"),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert secrets["OPENAI_API_KEY"] not in html and secrets["DB_PASSWORD"] not in html
    assert row.hint in pages[0].content.decode()
    assert staff_client.get("/admin/vault/credential/add/").status_code == 403
    assert staff_client.get("/admin/vault/auditevent/add/").status_code == 403
    event = AuditEvent.objects.first()
    assert staff_client.post(f"/admin/vault/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert staff_client.post(f"/admin/vault/auditevent/{event.pk}/change/", {"action": "delete"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    # Staff deletes go through the service and are audited with the staff user as actor.
    response = staff_client.post(f"/admin/vault/credential/{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Credential.objects.filter(pk=row.pk).exists()
    deleted = AuditEvent.objects.get(action="delete", object_id=str(row.pk))
    assert (deleted.actor_type, deleted.actor_label, deleted.reason) == ("staff", "staff", "admin")
    response = staff_client.post("/admin/vault/credential/", {
        "action": "delete_selected", "_selected_action": [str(c.pk) for c in Credential.objects.all()], "post": "yes",
    })
    assert response.status_code == 302 and not Credential.objects.exists()
    assert AuditEvent.objects.filter(action="delete", actor_type="staff").count() == 2
