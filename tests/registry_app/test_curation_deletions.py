"""Staff deletions of imported rows and released pins, against real imports: the admin through Django's test client
(real requests, logged in as staff), `import_catalogue` on native files the tests write (and one Docker catalog
entry from ../shared), the real database."""

import io
import json
import shutil
from pathlib import Path

import pytest
from django import forms
from django.contrib.auth.models import Permission
from django.contrib.postgres.search import SearchQuery
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from agents_app.master.requirements import plan_requirements
from agents_app.services import agent_create_for_catalogue_servers
from registry_app.embeddings import get_provider
from registry_app.models import (
    CredentialRequirement,
    CurationEdit,
    LaunchRecipe,
    McpServer,
    ServerTool,
    SuppressedRow,
    ToolEmbedding,
)
from registry_app.search_index import server_embeddings_refresh
from sessions_app.credentials import credentials_store
from sessions_app.models import Session
from tests.shared import SHARED

CHANGELIST = reverse("admin:registry_app_mcpserver_changelist")
SUPPRESSED_CHANGELIST = reverse("admin:registry_app_suppressedrow_changelist")
DOCKER = SHARED / "catalogue" / "docker-mcp-registry"


@pytest.fixture(autouse=True)
def empty_catalogue(db):
    """An empty catalogue inside the test's transaction (the test database may hold the committed bundled one)."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE registry_app_mcpserver, registry_app_syncstate CASCADE")


# ------------------------------------------------------------------------------------------------ helpers


def entry(slug: str = "acme-helpdesk", *, description: str = "Tickets for Acme support teams.", version: str = "v1",
          extra_tools: tuple[str, ...] = ()) -> dict:
    """One server in our native catalogue format; `version` changes every tool's text (a newer snapshot)."""
    return {
        "slug": slug,
        "name": f"Acme Helpdesk {slug}",
        "description": description,
        "repository_url": f"https://github.com/acme-test/{slug}",
        "categories": ["support"],
        "launch": [
            {"kind": "remote", "url": f"https://mcp.{slug}.example.com/mcp", "transport": "streamable-http"},
            {"kind": "other", "command": "python", "args": ["-m", "mcp_server_time"]},
        ],
        "tools": [
            {"name": "search_tickets", "description": f"Search tickets ({version})."},
            {"name": "close_ticket", "description": f"Close a ticket ({version})."},
            {"name": "export_everything", "description": f"Dump the zanzibarquux archive ({version})."},
            *({"name": name, "description": f"{name} ({version})."} for name in extra_tools),
        ],
        "credentials": [
            {"key": "ACME_API_KEY", "description": "API key from the Acme console", "required": True,
             "secret": True, "kind": "api_key"},
            {"key": "ACME_LEGACY_TOKEN", "description": "Old-style token from the Acme console", "required": True,
             "secret": True, "kind": "token"},
        ],
    }


def write_native(path: Path, *entries: dict) -> Path:
    path.write_text(json.dumps({"format": "mcpagent-catalogue", "version": 1, "servers": list(entries)}))
    return path


def run_import(path: Path, fmt: str = "native") -> str:
    out = io.StringIO()
    call_command("import_catalogue", str(path), format=fmt, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def change_url(server: McpServer) -> str:
    return reverse("admin:registry_app_mcpserver_change", args=[server.pk])


def form_data(response) -> dict:
    """POST data equal to what the change page shows (main form and every inline formset)."""
    data: dict = {}

    def put(form, name_of) -> None:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field, forms.BooleanField):
                if value:  # an unticked checkbox is absent from a real POST
                    data[name_of(name)] = "on"
            elif isinstance(field, forms.MultipleChoiceField):
                data[name_of(name)] = list(value or [])
            else:
                data[name_of(name)] = "" if value is None else value

    put(response.context["adminform"].form, lambda name: name)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            data[f"{formset.prefix}-{name}"] = formset.management_form[name].value()
        for child in formset.forms:
            put(child, child.add_prefix)
    return data


def row_index(data: dict, prefix: str, field: str, value: str) -> int:
    return next(i for i in range(int(data[f"{prefix}-TOTAL_FORMS"])) if data[f"{prefix}-{i}-{field}"] == value)


def admin_delete(client, server: McpServer, *, tools=(), credentials=(), recipe_kinds=()):
    """Tick "Delete" on the change page for the named rows and save, as staff do."""
    data = form_data(client.get(change_url(server)))
    for name in tools:
        data[f"tools-{row_index(data, 'tools', 'name', name)}-DELETE"] = "on"
    for key in credentials:
        data[f"credentials-{row_index(data, 'credentials', 'key', key)}-DELETE"] = "on"
    for kind in recipe_kinds:
        data[f"launch_recipes-{row_index(data, 'launch_recipes', 'kind', kind)}-DELETE"] = "on"
    response = client.post(change_url(server), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    return response


def tool_names(server: McpServer) -> set[str]:
    return set(ServerTool.objects.filter(server=server).values_list("name", flat=True))


def cred_keys(server: McpServer) -> set[str]:
    return set(CredentialRequirement.objects.filter(server=server).values_list("key", flat=True))


def recipe_kinds(server: McpServer) -> list[str]:
    return list(LaunchRecipe.objects.filter(server=server).values_list("kind", flat=True))


@pytest.fixture
def suppressed(admin_client, tmp_path):
    """Acme imported, then staff delete one tool, one credential and the remote launch recipe in the admin."""
    run_import(write_native(tmp_path / "v1.json", entry()))
    server = McpServer.objects.get(slug="acme-helpdesk")
    assert tool_names(server) == {"search_tickets", "close_ticket", "export_everything"}
    admin_delete(admin_client, server, tools=["export_everything"], credentials=["ACME_LEGACY_TOKEN"],
                 recipe_kinds=["remote"])
    return server


# ------------------------------------------------------------------------------------------------ deletions


def test_deleted_rows_stay_gone_after_reimport_and_the_deletion_is_recorded(admin_client, admin_user, tmp_path):
    run_import(write_native(tmp_path / "v1.json", entry()))
    server = McpServer.objects.get(slug="acme-helpdesk")
    before = timezone.now()
    admin_delete(admin_client, server, tools=["export_everything"], credentials=["ACME_LEGACY_TOKEN"],
                 recipe_kinds=["remote"])
    after = timezone.now()
    assert tool_names(server) == {"search_tickets", "close_ticket"}
    assert cred_keys(server) == {"ACME_API_KEY"}
    assert recipe_kinds(server) == ["other"]

    tombstones = {(t.relation, t.label): t for t in SuppressedRow.objects.filter(server=server)}
    assert set(tombstones) == {("tools", "export_everything"), ("credentials", "ACME_LEGACY_TOKEN"),
                               ("launch_recipes", "remote:https://mcp.acme-helpdesk.example.com/mcp")}
    assert all(t.user == admin_user and before <= t.at <= after for t in tombstones.values())
    assert tombstones[("tools", "export_everything")].row["description"] == "Dump the zanzibarquux archive (v1)."
    # The history says who, when and what: the deleted row's values and that it is now suppressed.
    edits = {e.action: e for e in CurationEdit.objects.filter(server=server)}
    assert set(edits) == {"edit_tools", "edit_credentials", "edit_launch_recipes"}
    assert all(e.user == admin_user and before <= e.at <= after for e in edits.values())
    assert edits["edit_tools"].changes == {
        "tools.export_everything": [{"name": "export_everything", "description": "Dump the zanzibarquux archive (v1).",
                                     "input_schema": None}, None],
        "tools.export_everything.suppressed": [False, True],
    }
    assert edits["edit_credentials"].changes["credentials.ACME_LEGACY_TOKEN.suppressed"] == [False, True]
    assert edits["edit_credentials"].changes["credentials.ACME_LEGACY_TOKEN"][1] is None

    # A newer snapshot changes every row and adds a tool: the source is re-read, the deleted rows stay out.
    output = run_import(write_native(tmp_path / "v2.json", entry(version="v2", extra_tools=("reopen_ticket",))))
    assert "1 updated" in output
    assert "; 3 rows staff deleted kept out" in output
    assert tool_names(server) == {"search_tickets", "close_ticket", "reopen_ticket"}
    assert ServerTool.objects.get(server=server, name="close_ticket").description == "Close a ticket (v2)."
    assert cred_keys(server) == {"ACME_API_KEY"}
    assert recipe_kinds(server) == ["other"]
    # The same file again: nothing changes, nothing comes back.
    again = run_import(tmp_path / "v2.json")
    assert "0 updated" in again and "kept out" not in again
    assert tool_names(server) == {"search_tickets", "close_ticket", "reopen_ticket"}
    assert SuppressedRow.objects.filter(server=server).count() == 3
    # Imports write no curation history.
    assert CurationEdit.objects.filter(server=server).count() == 3


def test_suppressed_rows_are_absent_from_the_api_search_embeddings_and_agent_creation(admin_client, api, tmp_path):
    run_import(write_native(tmp_path / "v1.json", entry()))
    server = McpServer.objects.get(slug="acme-helpdesk")
    client = api.client_obj
    session = Session.objects.create(client=client)
    credentials_store(client=client, session=session, server=server.slug, actor=client, reason="chat",
                      values={"ACME_API_KEY": "acme-key-0123456789abcdef",
                              "ACME_LEGACY_TOKEN": "acme-token-0123456789abcdef"}).raise_for_errors()
    provider = get_provider()
    server_embeddings_refresh(provider=provider, server_ids=[server.pk], use_cache=False)
    assert ToolEmbedding.objects.filter(tool__server=server, tool__name="export_everything").exists()
    assert McpServer.objects.filter(pk=server.pk, search_vector=SearchQuery("zanzibarquux")).exists()

    admin_delete(admin_client, server, tools=["export_everything"], credentials=["ACME_LEGACY_TOKEN"],
                 recipe_kinds=["remote"])
    run_import(write_native(tmp_path / "v2.json", entry(version="v2")))

    detail = api.get(f"/api/servers/{server.slug}")
    assert detail.status_code == 200
    body = detail.json()
    assert {t["name"] for t in body["tools"]} == {"search_tickets", "close_ticket"}
    assert [c["key"] for c in body["credentials"]] == ["ACME_API_KEY"]
    assert [r["kind"] for r in body["launch_recipes"]] == ["other"]

    server.refresh_from_db()
    assert "export everything" not in server.search_document and "close ticket" in server.search_document
    assert not McpServer.objects.filter(pk=server.pk, search_vector=SearchQuery("zanzibarquux")).exists()
    assert not ToolEmbedding.objects.filter(tool__server=server, tool__name="export_everything").exists()
    # The server's vector was made from the text with the deleted tool: it is stale until re-embedded.
    stored = server.embeddings.get(model=provider.name)
    assert stored.content_hash != server.content_hash
    server_embeddings_refresh(provider=provider, server_ids=[server.pk], only_stale=True, use_cache=False)
    assert server.embeddings.get(model=provider.name).content_hash == server.content_hash

    # What the chat asks for and what an agent gets: no suppressed credential, no suppressed recipe.
    plan = plan_requirements([server.slug])
    assert [c["credential_key"] for c in plan["required_credentials"]] == ["ACME_API_KEY"]
    agent = agent_create_for_catalogue_servers(client=client, session=session, server_slugs=[server.slug],
                                               user_prompt="Close my Acme tickets", workflow=["Close tickets"])
    (entry_,) = agent.mcp_config["mcpServers"].values()
    assert entry_["command"] == "python" and "url" not in entry_
    assert entry_["env"] == {"ACME_API_KEY": {"$credential": "ACME_API_KEY"}}


def test_deleting_a_row_only_staff_had_leaves_no_tombstone_and_a_rename_suppresses_the_old_name(
        admin_client, tmp_path):
    run_import(write_native(tmp_path / "v1.json", entry()))
    server = McpServer.objects.get(slug="acme-helpdesk")
    url = change_url(server)
    data = form_data(admin_client.get(url))
    total = int(data["tools-TOTAL_FORMS"])
    data.update({"tools-TOTAL_FORMS": str(total + 1), f"tools-{total}-id": "", f"tools-{total}-server": str(server.pk),
                 f"tools-{total}-name": "staff_tool", f"tools-{total}-description": "Added by staff.",
                 f"tools-{total}-input_schema": ""})
    data[f"tools-{row_index(data, 'tools', 'name', 'close_ticket')}-name"] = "close_tickets"
    assert admin_client.post(url, data).status_code == 302
    assert tool_names(server) == {"search_tickets", "close_tickets", "export_everything", "staff_tool"}
    assert list(SuppressedRow.objects.filter(server=server).values_list("key", flat=True)) == ["close_ticket"]
    edit = CurationEdit.objects.get(server=server, action="edit_tools")
    assert edit.changes["tools.close_ticket.name"] == ["close_ticket", "close_tickets"]
    assert edit.changes["tools.close_ticket.suppressed"] == [False, True]

    admin_delete(admin_client, server, tools=["staff_tool"])
    assert SuppressedRow.objects.filter(server=server).count() == 1  # nothing would bring staff_tool back
    assert CurationEdit.objects.filter(server=server, action="edit_tools").count() == 2

    run_import(write_native(tmp_path / "v2.json", entry(version="v2")))
    assert tool_names(server) == {"search_tickets", "close_tickets", "export_everything"}
    assert ServerTool.objects.get(server=server, name="close_tickets").source == "staff"


# ------------------------------------------------------------------------------------------------ undo


def test_restore_on_the_change_page_brings_the_row_back_and_imports_update_it(
        admin_client, admin_user, suppressed, tmp_path):
    server = suppressed
    run_import(write_native(tmp_path / "v2.json", entry(version="v2")))
    assert "export_everything" not in tool_names(server)

    page = admin_client.get(change_url(server))
    choices = dict(page.context["adminform"].form.fields["restore_suppressed"].choices)
    assert len(choices) == 3 and any("tool export_everything (deleted by admin" in label for label in choices.values())
    tool_tombstone = SuppressedRow.objects.get(server=server, relation="tools")
    data = form_data(page)
    data["restore_suppressed"] = [str(tool_tombstone.pk)]
    before = timezone.now()
    assert admin_client.post(change_url(server), data).status_code == 302

    # Back at once, as the source last gave it (v2), and searchable again.
    restored = ServerTool.objects.get(server=server, name="export_everything")
    assert (restored.description, restored.source) == ("Dump the zanzibarquux archive (v2).", "native")
    server.refresh_from_db()
    assert "export everything" in server.search_document
    assert McpServer.objects.filter(pk=server.pk, search_vector=SearchQuery("zanzibarquux")).exists()
    assert set(SuppressedRow.objects.filter(server=server).values_list("relation", flat=True)) == {
        "credentials", "launch_recipes"}
    edit = CurationEdit.objects.get(server=server, action="restore")
    assert edit.user == admin_user and edit.at >= before
    assert edit.changes == {
        "tools.export_everything.suppressed": [True, False],
        "tools.export_everything": [None, {"name": "export_everything",
                                           "description": "Dump the zanzibarquux archive (v2).", "input_schema": None}],
    }

    # The next import updates it like any imported row; the still-suppressed credential stays out.
    run_import(write_native(tmp_path / "v3.json", entry(version="v3")))
    assert ServerTool.objects.get(server=server, name="export_everything").description == \
        "Dump the zanzibarquux archive (v3)."
    assert cred_keys(server) == {"ACME_API_KEY"}


def test_restore_action_in_the_suppressed_rows_list(admin_client, admin_user, suppressed, tmp_path):
    server = suppressed
    listing = admin_client.get(SUPPRESSED_CHANGELIST, {"relation__exact": "credentials"})
    assert listing.status_code == 200
    rows = list(listing.context["cl"].result_list)
    assert [r.label for r in rows] == ["ACME_LEGACY_TOKEN"]
    assert "restore_selected" in dict(listing.context["action_form"].fields["action"].choices)
    assert admin_client.get(reverse("admin:registry_app_suppressedrow_delete", args=[rows[0].pk])).status_code == 403

    response = admin_client.post(SUPPRESSED_CHANGELIST, {"action": "restore_selected",
                                                         "_selected_action": [rows[0].pk]}, follow=True)
    assert "1 row(s) restored" in response.content.decode()
    assert cred_keys(server) == {"ACME_API_KEY", "ACME_LEGACY_TOKEN"}
    assert CurationEdit.objects.get(server=server, action="restore").user == admin_user
    # An import that no longer lists it removes it, as for any imported row; then a newer one brings it back.
    v2 = entry(version="v2")
    v2["credentials"] = v2["credentials"][:1]
    run_import(write_native(tmp_path / "v2.json", v2))
    assert cred_keys(server) == {"ACME_API_KEY"}
    run_import(write_native(tmp_path / "v3.json", entry(version="v3")))
    assert cred_keys(server) == {"ACME_API_KEY", "ACME_LEGACY_TOKEN"}


# ------------------------------------------------------------------------------------------------ releasing pins


def test_released_field_takes_the_import_value_again(admin_client, admin_user, tmp_path):
    run_import(write_native(tmp_path / "v1.json", entry(description="First upstream text.")))
    server = McpServer.objects.get(slug="acme-helpdesk")
    url = change_url(server)
    data = form_data(admin_client.get(url))
    data["description"] = "Curated text."
    assert admin_client.post(url, data).status_code == 302
    run_import(write_native(tmp_path / "v2.json", entry(description="Second upstream text.", version="v2")))
    server.refresh_from_db()
    assert server.description == "Curated text." and server.curated_fields == ["description"]

    page = admin_client.get(url)
    assert dict(page.context["adminform"].form.fields["release_curated"].choices) == {"description": "description"}
    data = form_data(page)
    data["release_curated"] = ["description"]
    before = timezone.now()
    assert admin_client.post(url, data).status_code == 302

    server.refresh_from_db()
    assert server.curated_fields == []
    assert server.description == "Second upstream text."  # at once, from the stored source record
    assert "Second upstream text" in server.search_document
    edit = CurationEdit.objects.get(server=server, action="release")
    assert edit.user == admin_user and edit.at >= before
    assert edit.changes == {"curated_fields": [["description"], []],
                            "description": ["Curated text.", "Second upstream text."]}
    assert "release_curated" not in form_data(admin_client.get(url))  # nothing pinned, no control

    run_import(write_native(tmp_path / "v3.json", entry(description="Third upstream text.", version="v3")))
    server.refresh_from_db()
    assert server.description == "Third upstream text."


def test_a_field_cannot_be_edited_and_released_at_once(admin_client, tmp_path):
    run_import(write_native(tmp_path / "v1.json", entry()))
    server = McpServer.objects.get(slug="acme-helpdesk")
    url = change_url(server)
    data = form_data(admin_client.get(url))
    data["description"] = "Curated text."
    assert admin_client.post(url, data).status_code == 302
    data = form_data(admin_client.get(url))
    data["description"] = "Edited again."
    data["release_curated"] = ["description"]
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "Either edit or release description" in str(response.context["adminform"].form.errors)
    server.refresh_from_db()
    assert (server.description, server.curated_fields) == ("Curated text.", ["description"])
    assert CurationEdit.objects.filter(server=server).count() == 1


def test_bulk_release_with_confirmation_page(admin_client, admin_user, tmp_path):
    run_import(write_native(tmp_path / "v1.json", entry("acme-a"), entry("acme-b"), entry("acme-c")))
    a, b, c = (McpServer.objects.get(slug=s) for s in ("acme-a", "acme-b", "acme-c"))
    for action in ("mark_hidden", "mark_verified"):
        admin_client.post(CHANGELIST, {"action": action, "_selected_action": [a.pk, b.pk]})
    selected = {"action": "release_pinned", "_selected_action": [a.pk, b.pk, c.pk]}

    confirm = admin_client.post(CHANGELIST, selected)
    assert confirm.status_code == 200
    assert "admin/registry_app/mcpserver/release_confirmation.html" in [t.name for t in confirm.templates]
    assert confirm.context["pinned"] == [("status", 2), ("verified", 2)]
    assert McpServer.objects.get(pk=a.pk).curated_fields == ["status", "verified"]  # nothing before confirming
    nothing = admin_client.post(CHANGELIST, {**selected, "post": "yes"}, follow=True)
    assert "Choose at least one field" in nothing.content.decode()

    response = admin_client.post(CHANGELIST, {**selected, "post": "yes", "fields": ["status"]}, follow=True)
    assert "Released status on 2 server(s)" in response.content.decode()
    for server in (a, b):
        server.refresh_from_db()
        # The sources say active; verified stays as staff set it, and pinned.
        assert (server.status, server.verified, server.curated_fields) == ("active", True, ["verified"])
        edit = CurationEdit.objects.get(server=server, action="release")
        assert edit.user == admin_user
        assert edit.changes == {"curated_fields": [["status", "verified"], ["verified"]], "status": ["hidden", "active"]}
    assert not CurationEdit.objects.filter(server=c).exists()

    # A source that deprecates the server now wins, as for any field imports own.
    v2 = entry("acme-a", version="v2")
    v2["status"] = "deprecated"
    run_import(write_native(tmp_path / "v2.json", v2, entry("acme-b"), entry("acme-c")))
    a.refresh_from_db()
    assert a.status == "deprecated"


# ------------------------------------------------------------------------------------------------ merging


def test_merge_keeps_deleted_rows_deleted(admin_client, tmp_path):
    run_import(write_native(tmp_path / "v1.json", entry("acme-a"), entry("acme-b", extra_tools=("b_only",))))
    a, b = McpServer.objects.get(slug="acme-a"), McpServer.objects.get(slug="acme-b")
    admin_delete(admin_client, a, tools=["close_ticket"])
    admin_delete(admin_client, b, tools=["b_only"])
    admin_client.post(CHANGELIST, {"action": "merge_selected", "_selected_action": [a.pk, b.pk], "post": "yes",
                                   "target": str(a.pk)})
    assert McpServer.objects.get(pk=b.pk).status == "hidden"
    # The target takes neither its own deleted tool from the duplicate nor the one deleted from the duplicate.
    assert tool_names(a) == {"search_tickets", "export_everything"}
    assert set(SuppressedRow.objects.filter(server=a).values_list("key", flat=True)) == {"close_ticket", "b_only"}
    assert CurationEdit.objects.get(server=a, action="merge").changes["suppressed"] == [None, ["tools.b_only"]]

    run_import(write_native(tmp_path / "v2.json", entry("acme-a", version="v2"),
                            entry("acme-b", version="v2", extra_tools=("b_only", "b_new"))))
    assert tool_names(a) == {"search_tickets", "export_everything", "b_new"}


# ------------------------------------------------------------------------------------------------ who may


def test_non_staff_and_staff_without_permission_can_do_none_of_it(admin_client, client, django_user_model,
                                                                   suppressed, tmp_path):
    server = suppressed
    data = form_data(admin_client.get(change_url(server)))
    data["description"] = "Curated text."
    assert admin_client.post(change_url(server), data).status_code == 302
    tombstone = SuppressedRow.objects.get(server=server, relation="tools")
    history = CurationEdit.objects.count()

    attempt = form_data(admin_client.get(change_url(server)))
    attempt[f"tools-{row_index(attempt, 'tools', 'name', 'search_tickets')}-DELETE"] = "on"
    attempt["restore_suppressed"] = [str(tombstone.pk)]
    attempt["release_curated"] = ["description"]
    requests = [
        (change_url(server), attempt),
        (CHANGELIST, {"action": "release_pinned", "_selected_action": [server.pk], "post": "yes",
                      "fields": ["description"]}),
        (SUPPRESSED_CHANGELIST, {"action": "restore_selected", "_selected_action": [tombstone.pk]}),
    ]

    visitor = django_user_model.objects.create_user(username="visitor", password="pw")
    client.force_login(visitor)
    for url, payload in requests:
        response = client.post(url, payload)
        assert response.status_code == 302 and "/login/" in response["Location"]

    # Staff who may only look at servers and tombstones are refused too.
    viewer = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(
        codename__in=["view_mcpserver", "view_suppressedrow", "view_servertool"]))
    client.force_login(viewer)
    assert client.post(change_url(server), attempt).status_code == 403
    for url, payload in requests[1:]:
        response = client.post(url, payload)  # the list shows, but without the action: nothing runs
        assert response.status_code == 200
        action_form = response.context["action_form"]
        assert action_form is None or payload["action"] not in dict(action_form.fields["action"].choices)

    server.refresh_from_db()
    assert server.curated_fields == ["description"] and server.description == "Curated text."
    assert "search_tickets" in tool_names(server) and "export_everything" not in tool_names(server)
    assert SuppressedRow.objects.filter(pk=tombstone.pk).exists()
    assert CurationEdit.objects.count() == history


# ------------------------------------------------------------------------------------------------ a real snapshot


@pytest.mark.skipif(not (DOCKER / "servers" / "buildkite").is_dir(), reason=f"Docker catalog snapshot not at {DOCKER}")
def test_deletions_survive_a_newer_docker_catalog_entry(admin_client, tmp_path):
    folder = tmp_path / "docker" / "servers" / "buildkite"
    shutil.copytree(DOCKER / "servers" / "buildkite", folder)
    run_import(tmp_path / "docker", "docker")
    server = McpServer.objects.get(sources__source="docker", sources__source_id="buildkite")
    assert {"access_token", "list_builds"} <= tool_names(server)
    assert "BUILDKITE_API_TOKEN" in cred_keys(server)
    admin_delete(admin_client, server, tools=["access_token"], credentials=["BUILDKITE_API_TOKEN"])

    yaml_path = folder / "server.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("Test Suites", "Test Suites (newer snapshot)"))
    assert "1 updated" in run_import(tmp_path / "docker", "docker")
    server.refresh_from_db()
    assert "newer snapshot" in server.description
    assert "access_token" not in tool_names(server) and "list_builds" in tool_names(server)
    assert "BUILDKITE_API_TOKEN" not in cred_keys(server)
