"""What the chosen servers ask of the user: only real credentials are required, and no instruction is a source's
placeholder text."""

import re

import pytest

from agents_app.master.requirements import counts_as_required, plan_requirements
from registry_app.models import CredentialRequirement, McpServer

Kind, Location = CredentialRequirement.Kind, CredentialRequirement.Location


def _server(slug: str, name: str, *, repository_url: str = "", homepage: str = "", credentials=()) -> McpServer:
    server = McpServer.objects.create(slug=slug, name=name, repository_url=repository_url, homepage=homepage)
    for fields in credentials:
        CredentialRequirement.objects.create(server=server, location=Location.ENV, **fields)
    return server


@pytest.mark.django_db
def test_configuration_settings_and_settings_with_defaults_are_never_required():
    _server("discord-x", "Discord X", credentials=[
        {"key": "NODE_ENV", "description": "eg: production", "required": True, "kind": Kind.SETTING},
        {"key": "LOG_LEVEL", "required": True, "kind": Kind.SETTING},
        {"key": "MCP_SERVER_PORT", "required": True, "kind": Kind.SETTING},
        {"key": "ENABLE_ATTACHMENTS", "required": True, "kind": Kind.SETTING},
        {"key": "DEBUG", "required": True, "secret": True, "kind": Kind.SETTING},
        {"key": "DISCORD_API_URL", "required": True, "default": "https://discord.com/api", "kind": Kind.URL},
        {"key": "DISCORD_BOT_TOKEN", "description": "Your Discord bot token", "required": True, "secret": True,
         "kind": Kind.TOKEN},
    ])
    result = plan_requirements(["discord-x"])
    assert [c["credential_key"] for c in result["required_credentials"]] == ["DISCORD_BOT_TOKEN"]
    assert {o["credential_key"] for o in result["optional_settings"]} == {
        "NODE_ENV", "LOG_LEVEL", "MCP_SERVER_PORT", "ENABLE_ATTACHMENTS", "DEBUG", "DISCORD_API_URL"}


def test_a_placeholder_default_is_no_default():
    assert counts_as_required(required=False, secret=True, default="your_api_key_here", key="X_API_KEY")
    assert counts_as_required(required=True, secret=False, default="/path/to/your/models", key="MODELS_PATH")
    assert not counts_as_required(required=True, secret=False, default="8089", key="PORT")
    # Names that look like settings but are the account itself stay required.
    assert counts_as_required(required=True, secret=False, default=None, key="MYSQL_HOST")
    assert counts_as_required(required=True, secret=False, default=None, key="TWILIO_ACCOUNT_SID")


@pytest.mark.django_db
def test_placeholder_descriptions_become_generic_steps_from_what_the_catalogue_knows():
    _server("sms-x", "SMS MCP Server", repository_url="https://github.com/someone/sms-mcp-server", credentials=[
        {"key": "ACCOUNT_SID", "description": "your_account_sid", "required": True, "kind": Kind.SETTING},
        {"key": "AUTH_TOKEN", "description": "<your-auth-token>", "required": True, "secret": True,
         "kind": Kind.TOKEN, "example": "your-auth-token-here"},
        {"key": "FROM_NUMBER", "description": "your_twilio_number", "required": True, "kind": Kind.SETTING,
         "instructions": ["changeme"]},
    ])
    asked = {c["credential_key"]: c for c in plan_requirements(["sms-x"])["required_credentials"]}
    assert set(asked) == {"ACCOUNT_SID", "AUTH_TOKEN", "FROM_NUMBER"}
    for item in asked.values():
        text = " ".join([item["description"], *item["instructions"]]).lower()
        assert not re.search(r"your[_-]|<your|\bhere\b|changeme", text), item
        assert "https://github.com/someone/sms-mcp-server" in " ".join(item["instructions"])
        assert any(item["credential_key"] in step for step in item["instructions"])
    assert asked["ACCOUNT_SID"]["description"] == "Your SMS account SID"
    assert "access token" in asked["AUTH_TOKEN"]["instructions"][0]


@pytest.mark.django_db
def test_real_descriptions_are_kept():
    _server("notion-x", "Notion X", credentials=[
        {"key": "WIDGET_KEY", "description": "The widget key from the admin page", "required": True,
         "secret": True, "kind": Kind.API_KEY, "example": "wk_123"},
    ])
    [item] = plan_requirements(["notion-x"])["required_credentials"]
    assert item["description"] == "The widget key from the admin page"
    assert item["instructions"][0] == "The widget key from the admin page"
    assert "It looks like: wk_123" in item["instructions"]
