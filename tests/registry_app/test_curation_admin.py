"""The curation admin of the catalogue: ranked search, usage columns without per-row queries, a readable change
page (upstream sources as links, parameters of tool schemas, JSON and steps as text)."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry_app.embeddings import get_provider
from registry_app.models import CredentialRequirement, CurationEdit, LaunchRecipe, ServerSource, ServerTool
from registry_app.search_index import refresh_search_fields, server_embeddings_refresh
from tests.registry_app.test_admin import CHANGELIST, _form_data, _names, make_server
from tests.registry_app.test_search import build_catalogue
from tests.registry_app.usage_data import build_usage, make_agent

pytestmark = pytest.mark.django_db


def _change(server) -> str:
    return reverse("admin:registry_app_mcpserver_change", args=[server.pk])


def test_search_is_the_ranked_catalogue_search(admin_client):
    servers = build_catalogue()
    refresh_search_fields()
    server_embeddings_refresh(provider=get_provider(), use_cache=False)

    names = _names(admin_client.get(CHANGELIST, {"q": "slack"}))
    # Substring-alphabetical would start with "Slack Exporter"; the product's search puts the vendor's server first.
    assert names[0] == "Slack MCP Server"
    assert all("slack" in name.lower() for name in names[:6]), names[:8]
    # A request in plain words matches no name as a substring, and still finds Slack servers first.
    assert "slack" in _names(admin_client.get(CHANGELIST, {"q": "post a message to my team on slack"}))[0].lower()
    # A clicked column still sorts, and a slug fragment still finds its server.
    by_name = _names(admin_client.get(CHANGELIST, {"q": "slack", "o": "1"}))
    assert by_name == sorted(by_name, key=str.lower) or by_name == sorted(by_name)
    assert servers["slack_archive"].name in _names(admin_client.get(CHANGELIST, {"q": "dev4/slack-exporter"}))


def test_usage_columns_without_per_row_queries(admin_client):
    slack = make_server(name="Slack", slug="slack", credentials=("SLACK_TOKEN",))
    notion = make_server(name="Notion", slug="notion")
    gmail = make_server(name="Gmail", slug="gmail")
    LaunchRecipe.objects.create(server=slack, kind="remote", transport="streamable-http",
                                url="https://mcp.slack.example/mcp", source="toolsdk")
    CredentialRequirement.objects.filter(server=slack).update(location="header")
    LaunchRecipe.objects.create(server=notion, kind="oci", identifier="mcp/notion", source="docker")
    client = build_usage(slack, notion, gmail)

    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    rows = {s.slug: s for s in response.context["cl"].result_list}
    assert (rows["slack"].usage.times_chosen, rows["slack"].usage.agents_using) == (2, 2)
    assert (rows["gmail"].usage.times_chosen, rows["gmail"].usage.agents_using) == (2, 1)
    html = response.content.decode()
    for column in ("runnable_here", "times_chosen", "agents_using", "last_validation", "tools_count",
                   "credentials_count", "source_names"):
        assert f"column-{column}" in html, column
    assert "✔ passed" in html
    admin_ = response.context["cl"].model_admin
    assert admin_.runnable_here(rows["slack"]) is True  # a remote taking a header key
    assert admin_.runnable_here(rows["notion"]) is False  # an image, and no Docker inside the sandbox

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(captured)

    few = queries()
    for n in range(30):
        server = make_server(tools=n % 3, credentials=("KEY",)[: n % 2])
        make_agent(client, servers={server.slug: n % 2 == 0, "slack": True}, status="ready")
    assert queries() == few


def test_change_page_reads_at_a_glance(admin_client):
    server = make_server(name="Gmail", slug="gmail", sources=())
    ServerSource.objects.create(server=server, source="native", source_id="gmail",
                                location="servers.json#servers[3421]", data={"provenance": [
                                    {"source": "toolsdk", "source_id": "@x/gmail", "location": "packages/x/gmail.json"},
                                    {"source": "awesome", "source_id": "https://github.com/x/gmail",
                                     "location": "README.md:845"}]})
    ServerTool.objects.create(server=server, name="send_email", source="toolsdk", input_schema={
        "type": "object", "required": ["to"],
        "properties": {"to": {"type": "string", "description": "Recipient address"}, "cc": {"type": "array"}}})
    ServerTool.objects.create(server=server, name="list_labels", source="toolsdk", input_schema=None)
    CredentialRequirement.objects.create(server=server, key="GMAIL_TOKEN", kind="api_key", secret=True,
                                         required=True, source="toolsdk",
                                         instructions=["Open Google Cloud console", "Create an OAuth client"])

    response = admin_client.get(_change(server))
    html = response.content.decode()
    assert "servers.json#servers" not in html
    assert 'href="https://github.com/toolsdk-ai/toolsdk-mcp-registry/blob/HEAD/packages/x/gmail.json"' in html
    assert 'href="https://github.com/punkpeye/awesome-mcp-servers/blob/HEAD/README.md#L845"' in html
    assert "toolsdk MCP Registry" in html and "awesome-mcp-servers" in html
    assert re.search(r"<code>to</code> <em>\(string, required\)</em>: Recipient address", html)
    assert ">null</textarea>" not in html, "an empty schema is an empty box"
    assert '"required": [\n' in html.replace("&quot;", '"'), "schemas are pretty-printed"
    assert "Open Google Cloud console\nCreate an OAuth client</textarea>" in html
    assert "GMAIL_TOKEN*" in html  # the glance line names required credentials

    # Saved unchanged: nothing recorded; steps edited as lines are stored as a list.
    data = _form_data(response)
    assert admin_client.post(_change(server), data).status_code == 302
    assert not CurationEdit.objects.filter(server=server).exists()
    key = next(k for k in data if k.endswith("-instructions"))
    data[key] = "Open the console\n\n  Copy the token  \n"
    assert admin_client.post(_change(server), data).status_code == 302
    assert CredentialRequirement.objects.get(server=server).instructions == ["Open the console", "Copy the token"]
    assert json.dumps(ServerTool.objects.get(name="list_labels").input_schema) == "null"
