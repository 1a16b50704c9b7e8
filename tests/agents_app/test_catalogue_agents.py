"""Agents for catalogue servers (the chat flow): launch recipes come from the catalogue, credentials from the
session, and the agent adopts them."""

import pytest

from agents_app import mcp_config
from agents_app.models import Agent
from agents_app.services import (
    agent_create_for_catalogue_servers,
    agent_validate,
    pick_recipe,
)
from mcpagent.errors import ApplicationError
from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer
from sessions_app.credentials import credentials_store
from mcpagent.vault.models import Credential
from sessions_app.models import Session
from tests.agents_app.conftest import SERVERS


def recipe(**fields) -> LaunchRecipe:
    return LaunchRecipe(server=McpServer(slug="x", name="X"), **fields)


@pytest.mark.parametrize("fields, expected", [
    ({"kind": "npm", "identifier": "@modelcontextprotocol/server-github", "version": "1.2.0"},
     {"transport": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github@1.2.0"],
      "env": {"GITHUB_TOKEN": {"$credential": "GITHUB_TOKEN"}}}),
    ({"kind": "pypi", "identifier": "mcp-server-time", "version": "2026.10.19", "args": ["--local-timezone", "UTC"]},
     {"transport": "stdio", "command": "uvx", "args": ["mcp-server-time==2026.10.19", "--local-timezone", "UTC"],
      "env": {"GITHUB_TOKEN": {"$credential": "GITHUB_TOKEN"}}}),
    ({"kind": "oci", "identifier": "ghcr.io/github/github-mcp-server", "version": "0.5"},
     {"transport": "stdio", "command": "docker",
      "args": ["run", "-i", "--rm", "-e", "GITHUB_TOKEN", "ghcr.io/github/github-mcp-server:0.5"],
      "env": {"GITHUB_TOKEN": {"$credential": "GITHUB_TOKEN"}}}),
    ({"kind": "remote", "url": "https://api.example.com/mcp", "transport": "streamable-http"},
     {"transport": "http", "url": "https://api.example.com/mcp", "headers": {}}),
])
def test_recipes_become_safe_entries(fields, expected):
    entry = mcp_config.entry_from_recipe(recipe(**fields), env_keys=["GITHUB_TOKEN"], header_keys=[])
    assert entry == expected
    from agents_app import safety

    safety.check_servers({"x": {k: v for k, v in entry.items()}})


def test_recipe_choice_prefers_installed_launchers(settings):
    settings.AGENT_ALLOWED_COMMANDS = ["python", "npx", "mcp-server-not-installed-xyz"]
    missing = recipe(kind="other", command="mcp-server-not-installed-xyz", priority=1)
    not_allowed = recipe(kind="pypi", identifier="mcp-server-time", priority=2)  # uvx is not in the allowlist
    python = recipe(kind="other", command="python", args=["-m", "mcp_server_time"], priority=3)
    for n, r in enumerate((missing, not_allowed, python)):
        r.id = n
    assert pick_recipe([missing, not_allowed, python]) is python
    assert pick_recipe([missing]) is missing  # none installed: validation will say what to install
    assert pick_recipe([not_allowed]) is None


@pytest.fixture
def catalogue(db):
    time_server = McpServer.objects.create(slug="mcp-server-time", name="Time", description="Current time")
    LaunchRecipe.objects.create(server=time_server, kind="other", command="python", args=["-m", "mcp_server_time"])
    acme = McpServer.objects.create(slug="acme-tickets", name="Acme Tickets", description="Tickets")
    LaunchRecipe.objects.create(server=acme, kind="other", command="python", args=[str(SERVERS / "auth_server.py")])
    CredentialRequirement.objects.create(server=acme, key="TOKEN", location="env", kind="token", required=True,
                                         secret=True)
    return {"time": time_server, "acme": acme}


def test_catalogue_agent_uses_recipes_and_session_credentials(api, catalogue, test_servers):
    client = api.client_obj
    session = Session.objects.create(client=client)
    credentials_store(client=client, session=session, server="acme-tickets", values={"TOKEN": "good-token-123"},
                      actor=client, reason="chat").raise_for_errors()
    agent = agent_create_for_catalogue_servers(
        client=client, session=session, server_slugs=["mcp-server-time", "acme-tickets"],
        user_prompt="What time is it, and who am I on Acme?", workflow=["Get the time", "Get the user"],
    )
    entries = agent.mcp_config["mcpServers"]
    assert entries["mcp-server-time"] == {"transport": "stdio", "command": "python", "args": ["-m", "mcp_server_time"],
                                          "env": {}, "catalogue": "mcp-server-time"}
    assert entries["acme-tickets"]["env"] == {"TOKEN": {"$credential": "TOKEN"}}
    assert agent.server_info["servers"][1]["name"] == "Acme Tickets"
    # The session's value now belongs to the agent (it lives as long as the agent).
    assert Credential.objects.get(server="acme-tickets", key="TOKEN").references.filter(agent_id=agent.id).exists()

    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.READY, agent.error
    assert agent.tools["acme-tickets"][0]["name"] == "whoami"
    assert [t["name"] for t in agent.tools["mcp-server-time"]] == ["get_current_time", "convert_time"]


def test_catalogue_agent_with_a_rejected_credential_says_so(api, catalogue, test_servers):
    client = api.client_obj
    session = Session.objects.create(client=client)
    credentials_store(client=client, session=session, server="acme-tickets", values={"TOKEN": "revoked-token"},
                      actor=client, reason="chat").raise_for_errors()
    agent = agent_create_for_catalogue_servers(client=client, session=session, server_slugs=["acme-tickets"],
                                               user_prompt="Who am I on Acme?", workflow="Get the user")
    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.FAILED
    assert agent.error["message"].startswith("Acme Tickets rejected the credentials")
    assert agent.error["server"] == "acme-tickets" and "TOKEN" in agent.error["hint"]


def test_unknown_catalogue_server_is_a_404(api, catalogue):
    with pytest.raises(ApplicationError) as caught:
        agent_create_for_catalogue_servers(client=api.client_obj, session=None, server_slugs=["nope"],
                                           user_prompt="x", workflow="y")
    assert caught.value.status == 404 and caught.value.details == {"server": "nope"}
    assert not Agent.objects.exists()


def test_imported_recipe_keeps_its_argv_and_templates():
    """Imported recipes carry command + full args, env defaults and ${KEY} header templates."""
    docker = recipe(kind="oci", identifier="acme/gmail", command="docker",
                    args=["run", "-i", "--rm", "-e", "EMAIL_PASSWORD", "-e", "IMAP_HOST", "acme/gmail"],
                    env={"IMAP_HOST": "imap.gmail.com", "EMAIL_PASSWORD": "${EMAIL_PASSWORD}"})
    entry = mcp_config.entry_from_recipe(docker, env_keys=["EMAIL_PASSWORD"], header_keys=[])
    assert entry["command"] == "docker" and entry["args"] == docker.args
    assert entry["env"] == {"EMAIL_PASSWORD": mcp_config.reference("EMAIL_PASSWORD")}
    assert entry["defaults"] == {"IMAP_HOST": "imap.gmail.com"}
    remote = recipe(kind="remote", url="https://mcp.example.com/mcp", transport="streamable-http",
                    headers={"Authorization": "Bearer ${APIFY_API_KEY}"})
    entry = mcp_config.entry_from_recipe(remote, env_keys=[], header_keys=["APIFY_API_KEY"])
    assert entry["headers"]["Authorization"] == mcp_config.reference("APIFY_API_KEY", "Bearer ${APIFY_API_KEY}")
    spec = mcp_config.launch_spec(name="r", entry=entry, values={"APIFY_API_KEY": "tok-123"})
    assert spec.headers["Authorization"] == "Bearer tok-123"
