"""Remote catalogue servers whose URL carries settings ("https://{tenant}.example.com/mcp" in the official
registry's `remotes[].url` with `variables`): the stored agent keeps the URL as a template with references,
the URL is filled at start (each value encoded for its place, refused when it would change the URL's structure),
the filled URL passes the same checks as any remote URL, values are redacted, and the export has ${VAR}
placeholders. End to end against a real streamable-HTTP MCP server on 127.0.0.1 mounted at /acme-corp/mcp."""

import json

import pytest
import yaml
from mcp.server.mcpserver import MCPServer

from agents_app import mcp_config
from agents_app.runtime import task_redactor
from agents_app.models import Agent
from agents_app.services import agent_create, agent_create_for_catalogue_servers, agent_validate
from mcpagent.errors import ApplicationError
from registry_app.importers import official
from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer
from registry_app.services import catalogue_import
from sessions_app.credentials import credential_delete, credentials_store
from mcpagent.vault.models import Credential
from sessions_app.models import Session
from tests.agents_app.conftest import assert_credential_missing
from tests.agents_app.servers.remote import RemoteServer

TENANT = "acme-corp"


def recipe(url: str, **fields) -> LaunchRecipe:
    return LaunchRecipe(server=McpServer(slug="x", name="X"), kind="remote", transport="streamable-http", url=url,
                        **fields)


@pytest.fixture
def no_loopback(settings):
    settings.AGENT_ALLOW_HTTP_LOOPBACK = False
    settings.DEBUG = False


# --- entries ----------------------------------------------------------------------------------------


def test_the_stored_entry_keeps_the_url_template_with_references():
    entry = mcp_config.entry_from_recipe(
        recipe("https://${tenant}.example.com/v1/${workspace}/mcp", headers={"Authorization": "Bearer ${TOKEN}"}),
        env_keys=[], header_keys=["TOKEN"], arg_keys=["tenant", "workspace"],
    )
    assert entry["url"] == "https://${tenant}.example.com/v1/${workspace}/mcp"
    assert entry["url_vars"] == {"tenant": {"$credential": "tenant"}, "workspace": {"$credential": "workspace"}}
    assert entry["headers"]["Authorization"] == {"$credential": "TOKEN", "template": "Bearer ${TOKEN}"}
    assert mcp_config.value_keys(entry) == ["TOKEN", "tenant", "workspace"]
    assert {"tenant", "workspace"} <= set(mcp_config.secret_keys(entry))
    assert mcp_config.public_entry(entry)["url"] == "https://${tenant}.example.com/v1/${workspace}/mcp"


def test_a_default_fills_an_uncollected_variable_and_a_missing_one_stays_a_reference():
    url = "https://${region}.api.example.com/${tenant}/mcp?lang=${lang}"
    entry = mcp_config.entry_from_recipe(recipe(url), env_keys=[], header_keys=[], arg_keys=[],
                                         arg_defaults={"region": "eu-west", "lang": "en gb"}, omit_keys=["tenant"])
    # Defaults are catalogue data, encoded for their place; a URL has no optional parts, so tenant stays a
    # reference and starting says it is missing.
    assert entry["url"] == "https://eu-west.api.example.com/${tenant}/mcp?lang=en%20gb"
    assert entry["url_vars"] == {"tenant": {"$credential": "tenant"}}
    with pytest.raises(ApplicationError) as caught:
        mcp_config.launch_spec(name="x", entry=entry, values={})
    assert (caught.value.status, caught.value.code) == (409, "credential_missing")
    assert caught.value.details["credential"] == "tenant"
    # A collected value wins over the default.
    entry = mcp_config.entry_from_recipe(recipe(url), env_keys=[], header_keys=[], arg_keys=["region", "tenant"],
                                         arg_defaults={"lang": "en"})
    assert entry["url"] == "https://${region}.api.example.com/${tenant}/mcp?lang=en"
    assert set(entry["url_vars"]) == {"region", "tenant"}


@pytest.mark.parametrize("url", ["${scheme}://mcp.example.com/mcp", "https://${user}@mcp.example.com/mcp",
                                 "https://me:${password}@mcp.example.com/mcp"])
def test_a_variable_in_the_scheme_or_user_part_makes_the_recipe_unusable(url):
    with pytest.raises(ApplicationError) as caught:
        mcp_config.entry_from_recipe(recipe(url), env_keys=[], header_keys=[],
                                     arg_keys=["scheme", "user", "password"])
    assert caught.value.code == "recipe_unusable"


def test_a_default_that_does_not_fit_its_place_makes_the_recipe_unusable():
    with pytest.raises(ApplicationError) as caught:
        mcp_config.entry_from_recipe(recipe("https://${tenant}.example.com/mcp"), env_keys=[], header_keys=[],
                                     arg_defaults={"tenant": "evil.com/"})
    assert caught.value.code == "recipe_unusable"


# --- filling at start -------------------------------------------------------------------------------


def spec_for(url: str, values: dict, **entry) -> mcp_config.LaunchSpec:
    variables = mcp_config.TEMPLATE_RE.findall(url)
    return mcp_config.launch_spec(name="acme", entry={"transport": "http", "url": url, "headers": {},
                                                      "url_vars": {v: {"$credential": v} for v in variables},
                                                      **entry}, values=values)


def test_values_are_encoded_for_their_place_and_redacted(settings):
    spec = spec_for("https://${tenant}.example.com:${port}/v1/${workspace}/mcp?team=${team}",
                    {"tenant": "Acme-Corp", "port": "8443", "workspace": "sales/eu 2", "team": "a&b=c#d"})
    assert spec.url == "https://acme-corp.example.com:8443/v1/sales%2Feu%202/mcp?team=a%26b%3Dc%23d"
    assert set(spec.url_keys) == set(spec.secret_keys) == {"tenant", "port", "workspace", "team"}
    # The values as given and as they appear in the URL (lower-cased host, percent-encoded path) are redacted.
    message = f"{spec.url} failed for Acme-Corp in sales/eu 2"
    redacted = task_redactor([spec])(message)
    for shown in ("acme-corp", "Acme-Corp", "sales%2Feu%202", "sales/eu 2", "a%26b%3Dc%23d"):
        assert shown not in redacted, redacted
    assert redacted == "https://***.example.com:***/v1/***/mcp?team=*** failed for *** in ***"


def test_an_internationalised_tenant_becomes_its_ascii_host_label():
    spec = spec_for("https://${tenant}.example.com/mcp", {"tenant": "Bücher"})
    assert spec.url == "https://xn--bcher-kva.example.com/mcp"


@pytest.mark.parametrize("value, part", [
    ("evil.com/", "label"), ("evil.com#", "label"), ("attacker.net?", "label"), ("x@attacker.net", "label"),
    ("a.b", "label"),  # another domain level: "${tenant}.example.com" stays one label under example.com
    ("acme:8080", "label"), ("acme corp", "label"), ("-acme", "label"), ("a" * 64, "label"),
])
def test_a_value_that_would_change_the_host_is_refused(value, part):
    with pytest.raises(ApplicationError) as caught:
        spec_for("https://${tenant}.example.com/mcp", {"tenant": value})
    error = caught.value
    assert (error.status, error.code) == (409, "credential_invalid")
    assert error.details["credential"] == "tenant" and error.details["url_part"] == part
    assert "tenant" in error.message and value not in error.message and value not in json.dumps(error.details)


@pytest.mark.parametrize("template, values", [
    ("https://mcp.example.com:${port}/mcp", {"port": "443/evil"}),
    ("https://mcp.example.com:${port}/mcp", {"port": "70000"}),
    ("https://mcp.example.com/${tenant}/mcp", {"tenant": ".."}),
    ("https://mcp.example.com/${tenant}/mcp", {"tenant": "."}),
    ("https://${host}/mcp", {"host": "evil.com:99@mcp.example.com"}),
    ("https://${host}/mcp", {"host": "a..b"}),
])
def test_other_values_that_do_not_fit_their_place_are_refused(template, values):
    with pytest.raises(ApplicationError) as caught:
        spec_for(template, values)
    assert (caught.value.status, caught.value.code) == (409, "credential_invalid")


def test_path_values_cannot_leave_their_segment():
    spec = spec_for("https://mcp.example.com/t/${tenant}/mcp", {"tenant": "../../admin?x=1#y"})
    assert spec.url == "https://mcp.example.com/t/..%2F..%2Fadmin%3Fx%3D1%23y/mcp"
    spec = spec_for("https://mcp.example.com/t/${tenant}/mcp", {"tenant": "%2e%2e"})
    assert spec.url == "https://mcp.example.com/t/%252e%252e/mcp"  # no double decoding into ".."


@pytest.mark.parametrize("host", ["10.0.0.7", "127.0.0.1", "localhost", "169.254.169.254", "192.168.1.1",
                                  "app.localhost"])
def test_a_filled_host_must_pass_the_remote_checks(no_loopback, host):
    with pytest.raises(ApplicationError) as caught:
        spec_for("https://${host}/mcp", {"host": host})
    error = caught.value
    assert (error.status, error.code) == (409, "credential_invalid")
    assert "private, loopback or link-local" in error.message and host not in error.message


def test_a_whole_host_may_come_from_a_setting(no_loopback):
    spec = spec_for("https://${host}/mcp", {"host": "Mcp.Example.com"})
    assert spec.url == "https://mcp.example.com/mcp"


def test_a_url_without_url_vars_is_not_filled():
    """A user's own URL with a literal "${X}" is not a template: only declared variables are filled."""
    spec = mcp_config.launch_spec(name="x", entry={"transport": "http", "url": "https://a.example.com/${X}/mcp"},
                                  values={"X": "secret-value"})
    assert spec.url == "https://a.example.com/${X}/mcp"


# --- export -----------------------------------------------------------------------------------------


def test_export_renders_url_variables_as_placeholders():
    servers = {
        "acme": {"transport": "http", "url": "https://${tenant}.example.com/${work-space}/mcp",
                 "headers": {"Authorization": {"$credential": "TOKEN", "template": "Bearer ${TOKEN}"}},
                 "url_vars": {"tenant": {"$credential": "tenant"}, "work-space": {"$credential": "work-space"}}},
        "other": {"transport": "sse", "url": "https://other.example.com/${tenant}/sse",
                  "url_vars": {"tenant": {"$credential": "tenant"}}},
    }
    exported = mcp_config.export_project(name="a", instruction="i", model="passthrough", servers=servers)
    config = yaml.safe_load(exported["files"]["fastagent.config.yaml"])["mcp"]["servers"]
    # Two servers share "tenant": each gets its own placeholder.
    assert config["acme"]["url"] == "https://${ACME_tenant}.example.com/${work_space}/mcp"
    assert config["acme"]["headers"] == {"Authorization": "${ACME_AUTHORIZATION}"}
    assert config["other"]["url"] == "https://other.example.com/${OTHER_tenant}/sse"
    assert exported["placeholders"] == ["ACME_AUTHORIZATION", "ACME_tenant", "OTHER_tenant", "work_space"]
    assert "# part of the server's URL" in exported["files"][".env.example"]
    assert "ACME_tenant=\n" in exported["files"][".env.example"]


# --- creation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry, problem", [
    ({"url": "https://${tenant}.example.com/mcp", "url_vars": {"tenant": "acme"}}, "credential reference"),
    ({"url": "https://example.com/mcp", "url_vars": {"tenant": {"$credential": "tenant"}}}, "has no ${tenant}"),
    ({"url": "https://${u}@example.com/mcp", "url_vars": {"u": {"$credential": "u"}}},
     "must not contain credentials"),
    ({"command": "python", "args": ["-m", "mcp_server_time"], "url_vars": {"u": {"$credential": "u"}}},
     "only a remote server"),
])
def test_an_unsafe_url_template_is_refused_at_creation(api, entry, problem):
    with pytest.raises(ApplicationError) as caught:
        agent_create(client=api.client_obj, servers={"acme": entry}, user_prompt="x", workflow="y",
                     model="passthrough")
    assert caught.value.code == "unsafe_mcp_config" and caught.value.status == 400
    assert problem in caught.value.message
    assert not Agent.objects.exists() and not Credential.objects.exists()


def test_a_template_cannot_open_http_to_any_host(api, no_loopback):
    """http stays for loopback in development only: a variable host cannot be the way around it."""
    entry = {"url": "http://${host}:8080/mcp", "url_vars": {"host": {"$credential": "host"}}}
    with pytest.raises(ApplicationError) as caught:
        agent_create(client=api.client_obj, servers={"acme": entry}, user_prompt="x", workflow="y",
                     model="passthrough")
    assert caught.value.code == "unsafe_mcp_config" and "https" in caught.value.message
    assert not Agent.objects.exists()


# --- end to end: the official registry's remote with a URL variable, a real MCP server ------------------


class TenantServer:
    """A streamable-HTTP MCP server on 127.0.0.1 that answers only at /acme-corp/mcp; records every path asked."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        server = MCPServer("tenant-test")

        @server.tool()
        def whoami() -> str:
            """The tenant this endpoint serves."""
            return TENANT

        inner = server.streamable_http_app(streamable_http_path=f"/{TENANT}/mcp", stateless_http=True,
                                           json_response=True)

        async def app(scope, receive, send):
            if scope["type"] == "http":
                self.paths.append(scope["raw_path"].decode())
            await inner(scope, receive, send)

        self._remote = RemoteServer(app)
        self.port = self._remote.port

    def __enter__(self) -> "TenantServer":
        self._remote.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._remote.__exit__(*exc)


@pytest.fixture
def tenant_server(settings):
    settings.AGENT_ALLOW_HTTP_LOOPBACK = True
    with TenantServer() as server:
        yield server


def import_official(tmp_path, *, port: int, variables: dict) -> McpServer:
    """The server as the official registry publishes it, through the real importer into the catalogue."""
    document = {"servers": [{"server": {
        "name": "io.github.acme/tenant-mcp", "title": "Acme Tenant", "description": "Tenant-scoped Acme tools",
        "version": "1.0.0",
        "remotes": [{"type": "streamable-http", "url": f"http://127.0.0.1:{port}/{{tenant}}/mcp",
                     "variables": variables}],
    }, "_meta": {"io.modelcontextprotocol.registry/official": {"isLatest": True, "status": "active"}}}]}
    path = tmp_path / "servers.json"
    path.write_text(json.dumps(document))
    batch = official.read(path)
    assert batch.records and not batch.problems, batch.problems
    catalogue_import(records=batch.records, refresh_search=False)
    server = McpServer.objects.get(name="Acme Tenant")
    assert server.launch_recipes.get().url == f"http://127.0.0.1:{port}/${{tenant}}/mcp"
    return server


def agent_for(api, server: McpServer, value: str | None) -> Agent:
    session = Session.objects.create(client=api.client_obj)
    if value is not None:
        credentials_store(client=api.client_obj, session=session, server=server.slug, values={"tenant": value},
                          actor=api.client_obj, reason="chat").raise_for_errors()
    return agent_create_for_catalogue_servers(client=api.client_obj, session=session, server_slugs=[server.slug],
                                              user_prompt="Who am I on Acme?", workflow="Ask whoami",
                                              model="passthrough")


def test_the_url_variable_reaches_the_real_server_only_with_the_right_value(api, tenant_server, tmp_path):
    server = import_official(tmp_path, port=tenant_server.port,
                             variables={"tenant": {"description": "Your Acme tenant", "isRequired": True}})
    requirement = CredentialRequirement.objects.get(server=server)
    assert (requirement.key, requirement.location) == ("tenant", "arg")

    # The right tenant: validated against the real server, then a run calls its tool.
    agent = agent_for(api, server, TENANT)
    entry = agent.mcp_config["mcpServers"][server.slug]
    assert entry["url"] == f"http://127.0.0.1:{tenant_server.port}/${{tenant}}/mcp"
    assert entry["url_vars"] == {"tenant": {"$credential": "tenant"}}
    assert TENANT not in json.dumps(agent.mcp_config)
    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.READY, agent.error
    assert [t["name"] for t in agent.tools[server.slug]] == ["whoami"]
    assert f"/{TENANT}/mcp" in tenant_server.paths
    response = api.post(f"/api/agents/{agent.id}/messages", {"message": "***CALL_TOOL whoami {}",
                                                             "model": "passthrough"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["tool_calls"][0]["result"] == "***"  # the tenant, redacted in what the user sees
    shown = api.get(f"/api/agents/{agent.id}").json()
    assert TENANT not in json.dumps(shown)
    exported = api.get(f"/api/agents/{agent.id}/config").json()
    config = yaml.safe_load(exported["files"]["fastagent.config.yaml"])
    assert config["mcp"]["servers"][server.slug]["url"] == f"http://127.0.0.1:{tenant_server.port}/${{tenant}}/mcp"
    assert exported["placeholders"] == ["tenant"] and TENANT not in json.dumps(exported)

    # Every start fills and checks the URL again: the agent's value changed to one that cannot be a path segment.
    ready = agent
    credentials_store(client=api.client_obj, session=ready.session, agent=ready, server=server.slug,
                      values={"tenant": ".."}, actor=api.client_obj, reason="test").raise_for_errors()
    asked = len(tenant_server.paths)
    response = api.post(f"/api/agents/{ready.id}/messages", {"message": "***CALL_TOOL whoami {}",
                                                             "model": "passthrough"}, format="json")
    assert response.status_code == 502, response.content
    assert response.json()["error"]["details"]["reason"] == "credential_invalid", response.json()
    assert len(tenant_server.paths) == asked

    # A wrong tenant reaches the server at its own path, which is no MCP endpoint: a clear, redacted failure.
    agent = agent_validate(agent_id=agent_for(api, server, "other-corp").id)
    assert agent.status == Agent.Status.FAILED
    assert agent.error["code"] == "not_an_mcp_endpoint", agent.error
    assert "/***/mcp answered HTTP 404" in agent.error["message"] and "other-corp" not in json.dumps(agent.error)
    assert "/other-corp/mcp" in tenant_server.paths

    # A malicious one stays inside its path segment (encoded): it cannot reach the tenant's endpoint.
    asked = len(tenant_server.paths)
    agent = agent_validate(agent_id=agent_for(api, server, f"x/../{TENANT}").id)
    assert agent.status == Agent.Status.FAILED and agent.error["code"] == "not_an_mcp_endpoint", agent.error
    assert tenant_server.paths[asked:] and set(tenant_server.paths[asked:]) == {f"/x%2F..%2F{TENANT}/mcp"}
    assert "x/../" not in json.dumps(agent.error)

    # One that cannot be a path segment at all is refused before anything is asked.
    asked = len(tenant_server.paths)
    agent = agent_validate(agent_id=agent_for(api, server, "..").id)
    assert agent.status == Agent.Status.FAILED
    assert agent.error["code"] == "credential_invalid" and "tenant" in agent.error["message"], agent.error
    assert len(tenant_server.paths) == asked


def test_a_missing_url_setting_is_a_credential_missing(api, tenant_server, tmp_path):
    server = import_official(tmp_path, port=tenant_server.port,
                             variables={"tenant": {"description": "Your Acme tenant", "isRequired": True}})
    agent = agent_for(api, server, TENANT)
    credential_delete(client=api.client_obj, credential_id=Credential.objects.get(key="tenant").pk,
                      actor=api.client_obj, reason="test")
    assert_credential_missing(agent, "tenant")
    assert tenant_server.paths == []


def test_an_optional_url_variable_takes_its_default(api, tenant_server, tmp_path):
    server = import_official(tmp_path, port=tenant_server.port,
                             variables={"tenant": {"description": "Your tenant", "default": TENANT}})
    agent = agent_for(api, server, None)
    assert agent.mcp_config["mcpServers"][server.slug]["url"] == f"http://127.0.0.1:{tenant_server.port}/{TENANT}/mcp"
    assert "url_vars" not in agent.mcp_config["mcpServers"][server.slug]
    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.READY, agent.error
    assert [t["name"] for t in agent.tools[server.slug]] == ["whoami"]
