"""The staff admin of the catalogue and the curation services behind it, through the Django test client."""

import itertools

import pytest
from django import forms
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mcpagent.errors import ApplicationError
from registry_app.curation import servers_merge, server_update_curated
from registry_app.models import (
    CredentialRequirement,
    CurationEdit,
    LaunchRecipe,
    McpServer,
    ServerEmbedding,
    ServerSource,
    ServerTool,
    ToolEmbedding,
)
from registry_app.embeddings import get_provider
from registry_app.search_index import build_tool_document, document_hash, server_embeddings_refresh, stale_tool_ids

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:registry_app_mcpserver_changelist")
_numbers = itertools.count()


def make_server(*, tools: int = 0, credentials: tuple[str, ...] = (), sources: tuple[str, ...] = ("toolsdk",),
                **fields) -> McpServer:
    n = next(_numbers)
    fields.setdefault("slug", f"server-{n}")
    fields.setdefault("name", f"Server {n}")
    fields.setdefault("description", f"Does thing number {n}.")
    fields.setdefault("repository_url", f"https://github.com/example/server-{n}")
    server = McpServer.objects.create(**fields)
    ServerTool.objects.bulk_create(
        [ServerTool(server=server, name=f"tool_{i}", description=f"Tool {i}", source="toolsdk") for i in range(tools)]
    )
    CredentialRequirement.objects.bulk_create(
        [CredentialRequirement(server=server, key=key, kind="api_key", secret=True, source="toolsdk") for key in credentials]
    )
    ServerSource.objects.bulk_create(
        [ServerSource(server=server, source=source, source_id=f"{source}-{n}") for source in sources]
    )
    return server


def _names(response) -> list[str]:
    return [server.name for server in response.context["cl"].result_list]


def _post_action(client, action: str, servers, follow: bool = False, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [s.pk for s in servers], **extra},
                       follow=follow)


# ------------------------------------------------------------------------------------------------ the list


def test_changelist_with_filters_search_and_sort(admin_client):
    slack = make_server(name="Slack MCP", categories=["communication"], tools=3, credentials=("SLACK_BOT_TOKEN",),
                        sources=("official", "toolsdk"), popularity=0.9, verified=True, official=True)
    notion = make_server(name="Notion MCP", categories=["productivity"], tools=7, popularity=0.5)
    hidden = make_server(name="Old thing", categories=["communication"], status=McpServer.Status.HIDDEN,
                         sources=("awesome",))

    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert set(_names(response)) == {"Slack MCP", "Notion MCP", "Old thing"}
    content = response.content.decode()
    assert "communication" in content and "productivity" in content  # category filter choices
    assert "awesome" in content and "official" in content  # source filter choices

    def names(**params) -> set[str]:
        return set(_names(admin_client.get(CHANGELIST, params)))

    assert names(category="communication") == {"Slack MCP", "Old thing"}
    assert names(source="official") == {"Slack MCP"}
    assert names(status__exact="hidden") == {"Old thing"}
    assert names(verified__exact="1") == {"Slack MCP"}
    assert names(official__exact="1") == {"Slack MCP"}
    assert names(has_credentials="yes") == {"Slack MCP"}
    assert names(has_credentials="no") == {"Notion MCP", "Old thing"}
    assert names(has_tools="no") == {"Old thing"}
    # Search is the catalogue's ranked search (more than substring matches): the best match comes first.
    assert _names(admin_client.get(CHANGELIST, {"q": "notion"}))[0] == "Notion MCP"
    assert _names(admin_client.get(CHANGELIST, {"q": slack.repository_url}))[0] == "Slack MCP"

    columns = list(response.context["cl"].list_display)[1:]  # after the selection checkbox
    by_tools = _names(admin_client.get(CHANGELIST, {"o": f"-{columns.index('tools_count') + 1}"}))
    assert by_tools == ["Notion MCP", "Slack MCP", "Old thing"]
    by_popularity = _names(admin_client.get(CHANGELIST, {"o": f"-{columns.index('popularity') + 1}"}))
    assert by_popularity[0] == "Slack MCP"
    row = next(s for s in admin_client.get(CHANGELIST).context["cl"].result_list if s.pk == slack.pk)
    assert (row.tools_count, row.credentials_count, sorted(row.source_names)) == (3, 1, ["official", "toolsdk"])
    assert hidden.pk and notion.pk


def test_changelist_query_count_does_not_grow_with_rows(admin_client):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(CHANGELIST, {"has_tools": "yes", "o": "-5"})
        assert response.status_code == 200
        return len(captured)

    for _ in range(5):
        make_server(tools=2, credentials=("API_KEY",), categories=["search"])
    few = queries_for_page()
    for n in range(200):
        make_server(tools=n % 4 + 1, credentials=("API_KEY", "OTHER_KEY")[: n % 3], categories=[f"cat-{n % 7}"],
                    sources=("toolsdk", "docker")[: n % 2 + 1])
    many = queries_for_page()
    assert many == few, "the changelist makes per-row queries"
    assert many <= 12


# ------------------------------------------------------------------------------------------------ the change page


def _form_data(response) -> dict:
    """POST data equal to what the change page shows (main form and every inline formset)."""

    def put(data: dict, form, prefix_name) -> None:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field, forms.BooleanField):
                if value:  # an unticked checkbox is absent from a real POST
                    data[prefix_name(name)] = "on"
                continue
            data[prefix_name(name)] = "" if value is None else value

    data: dict = {}
    form = response.context["adminform"].form
    put(data, form, lambda name: name)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            data[f"{formset.prefix}-{name}"] = formset.management_form[name].value()
        for child in formset.forms:
            put(data, child, child.add_prefix)
    return data


def test_change_page_edit_is_recorded_and_pins_fields(admin_client, admin_user):
    server = make_server(name="Gmail MCP", description="Reads mail.", categories=["email"], tools=2,
                         credentials=("GMAIL_TOKEN",))
    url = reverse("admin:registry_app_mcpserver_change", args=[server.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    data = _form_data(page)
    data["description"] = "Reads, labels and sends Gmail messages."
    data["categories"] = "email,productivity"
    tool_index = next(i for i in range(2) if data[f"tools-{i}-name"] == "tool_0")
    data[f"tools-{tool_index}-description"] = "Search the mailbox."
    total = int(data["credentials-TOTAL_FORMS"])
    data.update({
        "credentials-TOTAL_FORMS": str(total + 1),
        f"credentials-{total}-server": str(server.pk), f"credentials-{total}-id": "",
        f"credentials-{total}-key": "GMAIL_APP_PASSWORD", f"credentials-{total}-location": "env",
        f"credentials-{total}-kind": "password", f"credentials-{total}-secret": "on",
        f"credentials-{total}-description": "App password", f"credentials-{total}-instructions": "",
        f"credentials-{total}-choices": "[]", f"credentials-{total}-service": "", f"credentials-{total}-pattern": "",
        f"credentials-{total}-format": "", f"credentials-{total}-example": "", f"credentials-{total}-default": "",
    })

    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors

    server.refresh_from_db()
    assert server.description == "Reads, labels and sends Gmail messages."
    assert server.categories == ["email", "productivity"]
    assert {"description", "categories"} <= set(server.curated_fields)
    assert "name" not in server.curated_fields  # untouched fields stay importable
    edit = CurationEdit.objects.get(server=server, action="edit")
    assert edit.user == admin_user and edit.at
    assert edit.changes["description"] == ["Reads mail.", "Reads, labels and sends Gmail messages."]
    assert edit.changes["categories"] == [["email"], ["email", "productivity"]]

    tool = ServerTool.objects.get(server=server, name="tool_0")
    assert (tool.description, tool.source) == ("Search the mailbox.", "staff")
    assert ServerTool.objects.get(server=server, name="tool_1").source == "toolsdk"  # unchanged rows keep theirs
    tools_edit = CurationEdit.objects.get(server=server, action="edit_tools")
    assert tools_edit.changes == {"tools.tool_0.description": ["Tool 0", "Search the mailbox."]}
    added = CredentialRequirement.objects.get(server=server, key="GMAIL_APP_PASSWORD")
    assert (added.source, added.kind, added.secret, added.instructions) == ("staff", "password", True, [])
    creds_edit = CurationEdit.objects.get(server=server, action="edit_credentials")
    assert creds_edit.changes["credentials.GMAIL_APP_PASSWORD"][0] is None
    # The search text follows the edit.
    assert "sends Gmail messages" in server.search_document


def test_change_page_without_changes_records_nothing(admin_client):
    server = make_server(tools=1, credentials=("API_KEY",))
    url = reverse("admin:registry_app_mcpserver_change", args=[server.pk])
    response = admin_client.post(url, _form_data(admin_client.get(url)))
    assert response.status_code == 302
    assert not CurationEdit.objects.filter(server=server).exists()
    assert McpServer.objects.get(pk=server.pk).curated_fields == []


def test_add_server_by_hand(admin_client, admin_user):
    page = admin_client.get(reverse("admin:registry_app_mcpserver_add"))
    data = _form_data(page)
    data.update(name="Hand-made server", slug="hand-made", description="Added by staff.", status="active",
                popularity="0.3", categories="testing")
    response = admin_client.post(reverse("admin:registry_app_mcpserver_add"), data)
    assert response.status_code == 302
    server = McpServer.objects.get(slug="hand-made")
    assert {"name", "description", "categories"} <= set(server.curated_fields)
    edit = CurationEdit.objects.get(server=server, action="create")
    assert edit.user == admin_user and edit.changes["name"] == [None, "Hand-made server"]


def test_servers_cannot_be_deleted_in_the_admin(admin_client):
    server = make_server()
    assert admin_client.get(reverse("admin:registry_app_mcpserver_delete", args=[server.pk])).status_code == 403
    choices = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert "delete_selected" not in [name for name, _ in choices]
    assert {"mark_hidden", "merge_selected", "reembed"} <= {name for name, _ in choices}


# ------------------------------------------------------------------------------------------------ bulk actions


@pytest.mark.parametrize(
    ("action", "field", "value"),
    [
        ("mark_hidden", "status", "hidden"),
        ("mark_deprecated", "status", "deprecated"),
        ("mark_verified", "verified", True),
    ],
)
def test_bulk_actions_change_and_record(admin_client, admin_user, action, field, value):
    servers = [make_server() for _ in range(3)]
    untouched = make_server()
    response = _post_action(admin_client, action, servers)
    assert response.status_code == 302
    for server in servers:
        server.refresh_from_db()
        assert getattr(server, field) == value
        assert field in server.curated_fields
        edit = CurationEdit.objects.get(server=server)
        assert edit.user == admin_user and edit.changes[field][1] == value
    untouched.refresh_from_db()
    assert untouched.status == "active" and not untouched.verified and untouched.curated_fields == []
    # Doing it again changes nothing and records nothing more.
    _post_action(admin_client, action, servers)
    assert CurationEdit.objects.count() == 3


def test_unverify_and_reactivate(admin_client):
    server = make_server(verified=True, status=McpServer.Status.HIDDEN)
    _post_action(admin_client, "mark_unverified", [server])
    _post_action(admin_client, "mark_active", [server])
    server.refresh_from_db()
    assert (server.verified, server.status) == (False, "active")
    assert sorted(CurationEdit.objects.filter(server=server).values_list("action", flat=True)) == ["set_status", "set_verified"]


@pytest.mark.django_db(transaction=True)  # as in production: each embedding batch commits on its own
def test_reembed_action(admin_client, admin_user):
    servers = [make_server(name=f"Weather {i}", description="Forecasts and current conditions.") for i in range(3)]
    response = _post_action(admin_client, "reembed", servers)
    assert response.status_code == 302
    rows = ServerEmbedding.objects.filter(server__in=servers)
    assert rows.count() == 3 and len({r.model for r in rows}) == 1
    for server in servers:
        server.refresh_from_db()
        assert server.content_hash and rows.get(server=server).content_hash == server.content_hash
    assert CurationEdit.objects.filter(action="reembed", user=admin_user).count() == 3


def test_tool_edit_in_the_admin_makes_its_vector_stale_and_reembed_refreshes_it(admin_client):
    server = make_server(name="Mail", description="Reads mail.", tools=3)
    model = get_provider().name
    server_embeddings_refresh(provider=get_provider(), server_ids=[server.pk], use_cache=False)
    assert ToolEmbedding.objects.filter(tool__server=server, model=model).count() == 3
    url = reverse("admin:registry_app_mcpserver_change", args=[server.pk])
    data = _form_data(admin_client.get(url))
    index = next(i for i in range(3) if data[f"tools-{i}-name"] == "tool_1")
    data[f"tools-{index}-description"] = "Move a message to the trash."
    assert admin_client.post(url, data).status_code == 302
    tool = ServerTool.objects.get(server=server, name="tool_1")
    assert stale_tool_ids(model=model) == [tool.pk]

    response = _post_action(admin_client, "reembed", [server], follow=True)
    assert "1 server(s) and their 3 tool(s) re-embedded" in response.content.decode()
    assert stale_tool_ids(model=model) == []
    stored = ToolEmbedding.objects.get(tool=tool, model=model)
    assert stored.content_hash == document_hash(build_tool_document(tool_name="tool_1",
                                                                    description="Move a message to the trash."))


# ------------------------------------------------------------------------------------------------ merging


def _duplicates():
    target = make_server(name="GitHub", popularity=0.9, tools=2, credentials=("GITHUB_TOKEN",), categories=["dev"],
                         sources=("official",))
    dup = make_server(name="github-mcp", popularity=0.2, tools=3, credentials=("GITHUB_TOKEN", "GITHUB_HOST"),
                      categories=["dev", "git"], sources=("toolsdk", "awesome"))
    LaunchRecipe.objects.create(server=target, kind="npm", identifier="@example/github-mcp", source="official")
    LaunchRecipe.objects.create(server=dup, kind="npm", identifier="@Example/github-mcp", source="toolsdk")
    LaunchRecipe.objects.create(server=dup, kind="oci", identifier="ghcr.io/example/github-mcp", source="docker")
    return target, dup


def test_merge_with_confirmation_page(admin_client, admin_user):
    target, dup = _duplicates()
    confirm = _post_action(admin_client, "merge_selected", [dup, target])
    assert confirm.status_code == 200
    assert "admin/registry_app/mcpserver/merge_confirmation.html" in [t.name for t in confirm.templates]
    page = confirm.content.decode()
    assert 'value="Merge into the chosen server"' in page and 'name="post" value="yes"' in page
    assert 'value="merge_selected"' in page and "merge-confirmation" in page
    assert confirm.context["default_target"] == target.pk  # the most popular is proposed
    assert McpServer.objects.get(pk=dup.pk).status == "active"  # nothing happens before confirming

    response = _post_action(admin_client, "merge_selected", [dup, target], post="yes", target=str(target.pk))
    assert response.status_code == 302
    target.refresh_from_db()
    dup.refresh_from_db()
    assert dup.status == "hidden" and "status" in dup.curated_fields
    assert sorted(ServerSource.objects.filter(server=target).values_list("source", flat=True)) == ["awesome", "official", "toolsdk"]
    assert not ServerSource.objects.filter(server=dup).exists()
    assert sorted(ServerTool.objects.filter(server=target).values_list("name", flat=True)) == ["tool_0", "tool_1", "tool_2"]
    assert sorted(CredentialRequirement.objects.filter(server=target).values_list("key", flat=True)) == ["GITHUB_HOST", "GITHUB_TOKEN"]
    # Same package in different case is one recipe; the OCI image is new.
    assert sorted(LaunchRecipe.objects.filter(server=target).values_list("kind", flat=True)) == ["npm", "oci"]
    assert target.categories == ["dev", "git"]
    merge = CurationEdit.objects.get(server=target, action="merge")
    assert merge.user == admin_user and merge.changes["merged"] == [None, [dup.slug]]
    assert merge.changes["credentials"] == [None, ["GITHUB_HOST"]]
    assert CurationEdit.objects.get(server=dup, action="merged_into").changes["merged_into"] == [None, target.slug]


def test_merge_into_most_popular(admin_client):
    target, dup = _duplicates()
    response = _post_action(admin_client, "merge_into_most_popular", [dup, target])
    assert response.status_code == 302
    assert McpServer.objects.get(pk=dup.pk).status == "hidden"
    assert McpServer.objects.get(pk=target.pk).status == "active"
    assert ServerTool.objects.filter(server=target).count() == 3


def test_merge_needs_two_servers(admin_client):
    server = make_server()
    response = _post_action(admin_client, "merge_into_most_popular", [server], follow=True)
    assert "Select at least two servers" in response.content.decode()
    with pytest.raises(ApplicationError):
        servers_merge(target=server, duplicates=[server], user=None)


# ------------------------------------------------------------------------------------------------ services and the log


def test_update_service_refuses_unknown_and_invalid_fields():
    server = make_server()
    with pytest.raises(ApplicationError) as excinfo:
        server_update_curated(server=server, user=None, changes={"slug": "other"})
    assert excinfo.value.details == ["slug"]
    with pytest.raises(ApplicationError):
        server_update_curated(server=server, user=None, changes={"status": "exploded"})
    assert not CurationEdit.objects.exists()


def test_curation_log_is_read_only(admin_client):
    server = make_server()
    server_update_curated(server=server, user=None, changes={"name": "Renamed"})
    edit = CurationEdit.objects.get()
    changelist = admin_client.get(reverse("admin:registry_app_curationedit_changelist"))
    assert changelist.status_code == 200 and "Renamed" in changelist.content.decode()
    assert admin_client.get(reverse("admin:registry_app_curationedit_add")).status_code == 403
    detail = admin_client.get(reverse("admin:registry_app_curationedit_change", args=[edit.pk]))
    assert detail.status_code == 200 and detail.context["has_change_permission"] is False
    assert "Renamed" in detail.content.decode()
    assert admin_client.post(reverse("admin:registry_app_curationedit_change", args=[edit.pk]), {"action": "x"}).status_code == 403
    assert admin_client.get(reverse("admin:registry_app_curationedit_delete", args=[edit.pk])).status_code == 403
    assert CurationEdit.objects.get().changes == {"name": [edit.changes["name"][0], "Renamed"]}


def test_admin_requires_staff(client, django_user_model):
    user = django_user_model.objects.create_user(username="visitor", password="pw")
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/login/" in response["Location"]


# ------------------------------------------------------------------------------------------------ staff edits vs imports


def _record(description: str, tool_description: str, *, source_id: str = "acme-mcp", repo: str = "https://github.com/acme/acme-mcp",
            name: str = "Acme MCP", tools: tuple[str, ...] = ("search",)):
    from registry_app.importers.common import CredentialRecord, ServerRecord, ToolRecord

    return ServerRecord(
        source="toolsdk", source_id=source_id, location=f"test:{source_id}", name=name, description=description,
        repository_url=repo, tools=[ToolRecord(name=t, description=tool_description) for t in tools],
        credentials=[CredentialRecord(key="ACME_API_KEY", description="key", required=True, secret=True)],
    )


def test_staff_edits_survive_a_newer_import(admin_client):
    from registry_app.services import catalogue_import

    catalogue_import(records=[_record("Original text.", "Searches.")])
    server = McpServer.objects.get(slug__startswith="acme")
    url = reverse("admin:registry_app_mcpserver_change", args=[server.pk])
    data = _form_data(admin_client.get(url))
    data["description"] = "Curated text."
    data["tools-0-description"] = "Curated tool text."
    assert admin_client.post(url, data).status_code == 302
    _post_action(admin_client, "mark_hidden", [server])

    result = catalogue_import(records=[_record("Newer upstream text.", "Newer tool text.", name="Acme MCP v2",
                                               tools=("search", "fetch"))])
    assert result.updated == 1
    server.refresh_from_db()
    assert server.description == "Curated text."  # curated: kept
    assert server.name == "Acme MCP v2"  # not curated: follows the source
    assert server.status == "hidden"
    tools = {t.name: t for t in ServerTool.objects.filter(server=server)}
    assert (tools["search"].description, tools["search"].source) == ("Curated tool text.", "staff")
    assert tools["fetch"].description == "Newer tool text."


def test_merged_duplicate_stays_merged_after_reimport(admin_client):
    from registry_app.services import catalogue_import

    catalogue_import(records=[
        _record("One.", "x", source_id="acme-a", repo="https://github.com/acme/acme-a", name="Acme A"),
        _record("Two.", "y", source_id="acme-b", repo="https://github.com/acme/acme-b", name="Acme B", tools=("fetch",)),
    ])
    a, b = McpServer.objects.get(name="Acme A"), McpServer.objects.get(name="Acme B")
    _post_action(admin_client, "merge_selected", [a, b], post="yes", target=str(a.pk))

    result = catalogue_import(records=[
        _record("One, newer.", "x", source_id="acme-a", repo="https://github.com/acme/acme-a", name="Acme A"),
        _record("Two, newer.", "y", source_id="acme-b", repo="https://github.com/acme/acme-b", name="Acme B",
                tools=("fetch", "list")),
    ])
    assert result.created == 0
    b.refresh_from_db()
    assert b.status == "hidden" and not ServerTool.objects.filter(server=b).exists()
    assert set(ServerTool.objects.filter(server=a).values_list("name", flat=True)) >= {"search", "fetch", "list"}
