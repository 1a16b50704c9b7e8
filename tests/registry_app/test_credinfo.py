"""config/credinfo.json and registry_app.credinfo: structure, patterns against realistic values, matching."""

import json
import re
import string

import pytest

from registry_app.credinfo import (
    KINDS,
    CredinfoError,
    credinfo_services,
    file_problems,
    is_configuration_setting,
    load_credinfo,
    looks_like_placeholder,
    match_credential,
    service_files,
)

# The services the product promises curated instructions for (issue 3 and the team brief).
EXPECTED_SERVICES = {
    "google", "gmail", "google_drive", "google_calendar", "google_sheets", "google_cloud", "youtube", "slack", "notion",
    "github", "gitlab", "jira", "confluence", "linear", "discord", "telegram", "stripe", "postgres", "mysql",
    "mongodb", "redis", "supabase", "aws", "azure", "microsoft365", "cloudflare", "vercel", "netlify", "openai",
    "anthropic", "brave_search", "tavily", "exa", "perplexity", "airtable", "hubspot", "salesforce", "zendesk",
    "intercom", "twilio", "sendgrid", "mailgun", "shopify", "asana", "trello", "clickup", "todoist", "figma",
    "dropbox", "box", "sentry", "datadog", "grafana", "elasticsearch", "pinecone", "qdrant", "firecrawl",
    "browserbase", "spotify", "twitter", "reddit", "zoom", "obsidian", "filesystem",
}


def _alnum(n: int, seed: int = 0) -> str:
    chars = string.ascii_letters + string.digits
    return "".join(chars[(i * 7 + seed) % len(chars)] for i in range(n))


def _hex(n: int) -> str:
    return "".join("0123456789abcdef"[(i * 5) % 16] for i in range(n))


def _cred(service: str, cred_id: str) -> dict:
    return next(c for c in credinfo_services()[service]["credentials"] if c["id"] == cred_id)


def test_file_loads_with_all_expected_services():
    services = credinfo_services()
    assert len(services) >= 45
    assert EXPECTED_SERVICES <= set(services), EXPECTED_SERVICES - set(services)


def test_every_credential_is_complete_and_resolved():
    pattern_count = 0
    for service_id, service in credinfo_services().items():
        assert service["name"] and service["docs_url"].startswith("https://"), service_id
        assert service["credentials"] or service["files"], service_id
        for cred in service["credentials"]:
            where = f"{service_id}.{cred['id']}"
            assert cred["kind"] in KINDS, where
            assert isinstance(cred["secret"], bool) and isinstance(cred["required"], bool), where
            assert cred["description"].strip(), where
            assert 1 <= len(cred["instructions"]) <= 7, where
            if cred["secret"]:
                assert len(cred["instructions"]) >= 3, f"{where}: a secret needs 3-7 concrete steps"
            text = json.dumps(cred)
            assert "${" not in text, f"{where}: unresolved template variable"
            assert cred["docs_url"].startswith("https://"), where
            if cred.get("pattern"):
                pattern_count += 1
                assert cred.get("counter_examples"), f"{where}: a pattern needs counter-examples"
    assert pattern_count >= 60


def test_every_pattern_accepts_its_example_and_rejects_its_counter_examples():
    for service_id, service in credinfo_services().items():
        for cred in service["credentials"]:
            if not cred.get("pattern"):
                continue
            compiled = re.compile(cred["pattern"])
            assert compiled.fullmatch(cred["example"]), f"{service_id}.{cred['id']}: {cred['example']!r}"
            for bad in cred["counter_examples"]:
                assert not compiled.search(bad), f"{service_id}.{cred['id']} accepts {bad!r}"


# Realistic fake values built independently of the file (provider formats), and near-misses.
REALISTIC = [
    ("slack", "bot_token", ["xoxb-1234567890-1234567890123-" + _alnum(24), "xoxe.xoxb-1-" + _alnum(160)],
     ["xoxp-1234567890-1234567890-1234567890123-" + _hex(32), "xoxb-1234567890", "Bearer xoxb-1-2-abc"]),
    ("slack", "user_token", ["xoxp-1234567890-1234567890-1234567890123-" + _hex(32)],
     ["xoxb-1234567890-1234567890123-" + _alnum(24)]),
    ("slack", "app_token", ["xapp-1-A0123ABCDEF-1234567890123-" + _hex(64)], ["xoxb-1-2-abc"]),
    ("github", "token", ["ghp_" + _alnum(36), "gho_" + _alnum(36), "github_pat_11ABCDEFG0" + _alnum(60, 3), _hex(40)],
     ["ghp_" + _alnum(20), "glpat-" + _alnum(20), "ghx_" + _alnum(36), "token ghp_" + _alnum(36)]),
    ("openai", "api_key", ["sk-proj-" + _alnum(74) + "T3BlbkFJ" + _alnum(74, 2), "sk-" + _alnum(20) + "T3BlbkFJ" + _alnum(20),
                           "sk-svcacct-" + _alnum(60)],
     ["sk-ant-api03-" + _alnum(93) + "AA", "sk-or-v1-" + _hex(64), "sk-abc"]),
    ("anthropic", "api_key", ["sk-ant-api03-" + _alnum(93) + "AA", "sk-ant-admin01-" + _alnum(93) + "AA"],
     ["sk-proj-" + _alnum(80), "sk-ant-" + _alnum(40)]),
    ("notion", "token", ["ntn_" + "12345678901" + _alnum(35), "secret_" + _alnum(43)],
     ["ntn_" + _alnum(10), "secret-" + _alnum(43), "nt_" + _alnum(46)]),
    ("stripe", "secret_key", ["sk_live_51H" + _alnum(95), "sk_test_" + _alnum(24), "rk_live_" + _alnum(99)],
     ["pk_live_" + _alnum(24), "sk_demo_" + _alnum(24), "whsec_" + _alnum(32)]),
    ("aws", "access_key_id", ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
     ["AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPLEX", "AIDAIOSFODNN7EXAMPLE", "akiaiosfodnn7example"]),
    ("aws", "secret_access_key", ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"], ["wJalrXUtnFEMI/K7MDENG"]),
    ("aws", "region", ["us-east-1", "eu-central-1", "ap-southeast-2", "us-gov-west-1", "il-central-1"],
     ["us-east", "US-EAST-1", "useast1"]),
    ("linear", "api_key", ["lin_api_" + _alnum(40)], ["lin_api_" + _alnum(10), "lin_" + _alnum(40)]),
    ("gitlab", "token", ["glpat-" + _alnum(20), "glpat-" + _alnum(27) + ".01.0" + _hex(8)], ["glpat-" + _alnum(8), "ghp_" + _alnum(36)]),
    ("telegram", "bot_token", ["123456789:AAH" + _alnum(32), "7012345678:AAF-" + _alnum(31)],
     ["123456789:AAH" + _alnum(31), "123456789-AAH" + _alnum(32), "bot123456789:AAH" + _alnum(32)]),
    ("sendgrid", "api_key", ["SG." + _alnum(22) + "." + _alnum(43)], ["SG." + _alnum(22), "SG-" + _alnum(22) + "." + _alnum(43)]),
    ("airtable", "token", ["pat" + _alnum(14) + "." + _hex(64)], ["key" + _alnum(14), "pat" + _alnum(14)]),
    ("hubspot", "access_token", ["pat-na1-12345678-1234-1234-1234-123456789abc", "pat-eu1-12345678-1234-1234-1234-123456789abc"],
     ["12345678-1234-1234-1234-123456789abc"]),
    ("twilio", "account_sid", ["AC" + _hex(32)], ["SK" + _hex(32), "AC" + _hex(31)]),
    ("shopify", "access_token", ["shpat_" + _hex(32)], ["shpss_" + _hex(32), "shpat_" + _alnum(32, 5) + "!"]),
    ("clickup", "api_token", ["pk_12345678_" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"], ["pk_abc_" + "A" * 32]),
    ("figma", "access_token", ["figd_" + _alnum(40)], ["figd_" + _alnum(5)]),
    ("perplexity", "api_key", ["pplx-" + _alnum(48)], ["pplx-" + _alnum(10)]),
    ("tavily", "api_key", ["tvly-" + _alnum(32), "tvly-dev-" + _alnum(32)], ["tvly_" + _alnum(32)]),
    ("brave_search", "api_key", ["BSA" + _alnum(28)], ["BSB" + _alnum(28)]),
    ("firecrawl", "api_key", ["fc-" + _hex(32)], ["fc_" + _hex(32)]),
    ("grafana", "token", ["glsa_" + _alnum(32) + "_" + _hex(8)], ["glsa_" + _alnum(32)]),
    ("sentry", "auth_token", ["sntryu_" + _hex(64)], ["sntryu_" + _hex(10)]),
    ("huggingface", "token", ["hf_" + _alnum(34)], ["hf_" + _alnum(5)]),
    ("youtube", "api_key", ["AIzaSy" + _alnum(33)], ["AIzaSy" + _alnum(30)]),
    ("google", "client_id", ["123456789012-abc123def456ghi789jkl012mno345pq.apps.googleusercontent.com"],
     ["123456789012-abc.apps.example.com"]),
    ("google", "client_secret", ["GOCSPX-" + _alnum(28)], ["GOCSPX-" + _alnum(10)]),
    ("postgres", "connection_string", ["postgresql://u:p@db.example.com:5432/app", "postgres://u@localhost/app"],
     ["mysql://u:p@h/db", "db.example.com:5432"]),
    ("mongodb", "connection_string", ["mongodb+srv://u:p@cluster0.abcd.mongodb.net/db", "mongodb://localhost:27017"],
     ["postgres://u@h/db"]),
    ("redis", "url", ["redis://localhost:6379/0", "rediss://default:pw@example.upstash.io:6379"], ["localhost:6379"]),
    ("discord", "bot_token", ["MTAwMDAwMDAwMDAwMDAwMDAwMA." + "GaBcDe." + _alnum(38)], ["Bot abc.def.ghi"]),
    ("supabase", "access_token", ["sbp_" + _hex(40)], ["sbp_" + _hex(8)]),
    ("pinecone", "api_key", ["pcsk_" + _alnum(50), "12345678-1234-1234-1234-123456789abc"], ["pcsk_" + _alnum(4)]),
    ("zendesk", "api_token", [_alnum(40)], [_alnum(39)]),
    ("datadog", "api_key", [_hex(32)], [_hex(40)]),
    ("datadog", "app_key", [_hex(40)], [_hex(32)]),
    ("cloudflare", "account_id", [_hex(32)], ["my-account-id"]),
    ("azure", "tenant_id", ["72f988bf-86f1-41af-91ab-2d7cd011db47"], ["72f988bf86f141af91ab2d7cd011db47x"]),
    ("twitter", "api_key", [_alnum(25)], [_alnum(24)]),
    ("mailgun", "api_key", ["key-" + _hex(32), _hex(32) + "-" + _hex(8) + "-" + _hex(8)], ["key-" + _hex(8)]),
]


@pytest.mark.parametrize(("service", "cred_id", "good", "bad"), REALISTIC, ids=[f"{s}.{c}" for s, c, _, _ in REALISTIC])
def test_patterns_on_realistic_values(service, cred_id, good, bad):
    pattern = re.compile(_cred(service, cred_id)["pattern"])
    for value in good:
        assert pattern.fullmatch(value), f"rejects a valid {service} value {value!r}"
    for value in bad:
        assert not pattern.search(value), f"accepts an invalid {service} value {value!r}"


def test_match_slack_bot_token_on_slack_server():
    info = match_credential(
        key="SLACK_BOT_TOKEN", server_name="Slack", slug="slack", repository_url="https://github.com/korotovsky/slack-mcp-server"
    )
    assert info["service"] == "slack" and info["service_name"] == "Slack"
    assert info["kind"] == "token" and info["secret"] is True and info["required"] is True
    assert re.fullmatch(info["pattern"], info["example"]) and info["example"].startswith("xoxb-")
    assert any("Bot Token Scopes" in step for step in info["instructions"])
    assert set(info) == {"service", "service_name", "description", "instructions", "kind", "secret", "required",
                         "pattern", "example", "docs_url"}


def test_match_by_env_var_name_alone():
    assert match_credential(key="SLACK_BOT_TOKEN")["service"] == "slack"
    github = match_credential(key="GITHUB_PERSONAL_ACCESS_TOKEN", server_name="Some tool")
    assert github["service"] == "github" and github["pattern"]
    notion = match_credential(key="NOTION_API_KEY")
    assert notion["service"] == "notion" and "ntn_" in notion["pattern"]
    assert match_credential(key="AWS_SECRET_ACCESS_KEY")["service"] == "aws"
    # Header and argument spellings compare like env vars.
    assert match_credential(key="--notion-api-key")["service"] == "notion"


def test_unknown_or_ambiguous_keys_give_none():
    assert match_credential(key="WEATHER_UNITS", server_name="weather") is None
    assert match_credential(key="") is None
    # Generic names mean nothing without a server that fits a service...
    assert match_credential(key="API_KEY", server_name="Weather forecasts") is None
    # ...and the hosting part of a reverse-DNS registry name does not make a server a GitHub one.
    assert match_credential(key="API_KEY", server_name="io.github.someone/contextual-mcp-server") is None
    # GOOGLE_API_KEY is shared by Gemini, Maps and YouTube: only the server says which.
    assert match_credential(key="GOOGLE_API_KEY") is None
    assert match_credential(key="GOOGLE_API_KEY", slug="youtube-transcripts")["service"] == "youtube"
    assert match_credential(key="GOOGLE_API_KEY", server_name="Google Maps MCP")["service"] == "google_maps"


def test_generic_keys_resolve_through_the_server():
    assert match_credential(key="API_KEY", server_name="Tavily search")["service"] == "tavily"
    assert match_credential(key="X-API-Key", repository_url="https://github.com/exa-labs/exa-mcp-server")["service"] == "exa"
    assert match_credential(key="DATABASE_URL", server_name="postgres-mcp")["service"] == "postgres"
    assert match_credential(key="DATABASE_URL", server_name="mysql-mcp")["service"] == "mysql"
    assert match_credential(key="DATABASE_URL") is None


def test_shared_google_recipe_follows_the_product():
    generic = match_credential(key="GOOGLE_CLIENT_ID")
    assert generic["service"] == "google"
    gmail = match_credential(key="GOOGLE_CLIENT_ID", server_name="Gmail MCP Server")
    assert gmail["service"] == "gmail" and any("Gmail API" in step for step in gmail["instructions"])
    calendar = match_credential(key="GOOGLE_CLIENT_SECRET", server_name="Google Calendar")
    assert calendar["service"] == "google_calendar"
    assert match_credential(key="GMAIL_CLIENT_ID")["service"] == "gmail"
    # Outlook servers using Azure names get Microsoft Graph instructions, not Azure RBAC ones.
    assert match_credential(key="AZURE_CLIENT_ID", server_name="outlook-mcp")["service"] == "microsoft365"
    assert match_credential(key="JIRA_API_TOKEN")["service"] == "jira"


def test_service_files():
    gmail = service_files(server_name="Gmail", repository_url="https://github.com/someone/gmail-mcp", slug="gmail-mcp")
    client = next(f for f in gmail if f["id"] == "oauth_client")
    assert client["service"] == "gmail" and client["required"] is True and client["format"] == "json"
    assert ["installed.client_id", "installed.client_secret"] in client["required_fields"]
    assert all("${" not in step for step in client["instructions"])
    bigquery = service_files(server_name="BigQuery MCP", repository_url="", slug="bigquery")
    account = next(f for f in bigquery if f["id"] == "service_account")
    assert account["field_values"] == {"type": "service_account"}
    assert ["type", "project_id", "private_key", "client_email"] in account["required_fields"]
    assert service_files(server_name="Weather", repository_url="", slug="weather") == []


def test_file_problems():
    account = next(f for f in service_files(server_name="BigQuery", slug="bigquery") if f["id"] == "service_account")
    good = {"type": "service_account", "project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----\n",
            "client_email": "a@p.iam.gserviceaccount.com"}
    assert file_problems(account, json.dumps(good).encode()) == []
    assert file_problems(account, {**good, "private_key": ""})
    assert file_problems(account, {**good, "type": "authorized_user"}) == ["field type must be 'service_account'"]
    assert file_problems(account, b"not json") == ["the file is not valid JSON"]
    client = next(f for f in service_files(server_name="Gmail", slug="gmail") if f["id"] == "oauth_client")
    assert file_problems(client, {"web": {"client_id": "x", "client_secret": "y"}}) == []
    assert file_problems(client, {"installed": {"client_id": "x"}})


def _write(tmp_path, services: dict, **top) -> str:
    path = tmp_path / "credinfo.json"
    path.write_text(json.dumps({"version": 1, "services": services, **top}))
    return path


def _token(**overrides) -> dict:
    return {"id": "token", "keys": ["ACME_TOKEN"], "description": "d", "kind": "token", "secret": True,
            "required": True, "pattern": "^acme_[0-9]{4}$", "example": "acme_1234", "counter_examples": ["acme_12"],
            "instructions": ["a", "b", "c"], **overrides}


def _service(*credentials, **overrides) -> dict:
    return {"name": "Acme", "docs_url": "https://acme.example", "match": {"keywords": ["acme"]},
            "credentials": list(credentials), **overrides}


def test_valid_minimal_file_loads(tmp_path):
    info = load_credinfo(_write(tmp_path, {"acme": _service(_token())}))
    assert set(info.services) == {"acme"}


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ({"acme": _service(_token(example="nope"))}, "services.acme.credentials[0] (token): example 'nope' does not match"),
        ({"acme": _service(_token(counter_examples=["acme_0000"]))}, "counter-example 'acme_0000' matches"),
        ({"acme": _service(_token(pattern="acme_[0-9]+"))}, "pattern must be anchored"),
        ({"acme": _service(_token(pattern="^acme_[0-9$"))}, "pattern does not compile"),
        ({"acme": _service(_token(kind="magic"))}, "kind 'magic' is not one of"),
        ({"acme": _service(_token(secret="yes"))}, "'secret' is required and must be true or false"),
        ({"acme": _service(_token(instructions=[]))}, "instructions: must not be empty"),
        ({"acme": _service(_token(keys=["acme-token"]))}, "is not an UPPER_SNAKE env var name"),
        ({"acme": _service(_token(), _token())}, "duplicate credential id"),
        ({"acme": _service(_token(), _token(id="other"))}, "ACME_TOKEN belongs to two credentials"),
        ({"acme": _service(_token(), extends="nothing")}, "services.acme.extends: unknown service 'nothing'"),
        ({"acme": _service(_token(description="for ${product}"))}, "unknown or malformed ${variable}"),
        ({"acme": _service(_token(), match={})}, "services.acme.match: needs at least one keyword or substring"),
        ({"Acme": _service(_token())}, "services.Acme: service ids are lower_snake_case"),
        ({"acme": {**_service(_token()), "colour": "red"}}, "services.acme: unknown field(s) ['colour']"),
    ],
)
def test_malformed_file_is_refused_naming_the_entry(tmp_path, services, message):
    with pytest.raises(CredinfoError) as excinfo:
        load_credinfo(_write(tmp_path, services))
    assert message in str(excinfo.value)


def test_wrong_version_and_bad_json_are_refused(tmp_path):
    with pytest.raises(CredinfoError, match="version: must be 1"):
        load_credinfo(_write(tmp_path, {"acme": _service(_token())}, version=2))
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(CredinfoError, match="not valid JSON"):
        load_credinfo(path)
    with pytest.raises(CredinfoError, match="file not found"):
        load_credinfo(tmp_path / "missing.json")


@pytest.mark.parametrize("text", [
    "your_account_sid", "YOUR_API_KEY", "your-api-key-here", "<your-api-key>", "<token>", "api_key_here",
    "your api key here", "changeme", "CHANGE_ME", "${GITHUB_TOKEN}", "xxxxxxxx", "sk-xxxxxxxx", "...",
    "/path/to/your/models", "[API_KEY]", "{{token}}",
])
def test_placeholders_are_recognised(text):
    assert looks_like_placeholder(text)


@pytest.mark.parametrize("text", [
    "Your Discord bot token", "Twilio Account SID from the console", "eg: production", "production",
    "https://api.example.com", "$HOME/.kube/config", "8089", "xoxb-1234", "Your API key for the service", "",
])
def test_descriptions_and_real_values_are_not_placeholders(text):
    assert not looks_like_placeholder(text)


@pytest.mark.parametrize("key", [
    "NODE_ENV", "LOG_LEVEL", "PORT", "MYSQL_PORT", "mcp-server-port", "DEBUG", "MCP_DEBUG", "ENABLE_UPLOADS",
    "UPLOADS_ENABLED", "FEATURE_FLAGS", "REQUEST_TIMEOUT_MS", "MCP_TRANSPORT", "NODE_OPTIONS", "MCP_SERVER_NAME",
])
def test_configuration_settings_are_recognised(key):
    assert is_configuration_setting(key)


@pytest.mark.parametrize("key", [
    "SLACK_BOT_TOKEN", "ACCOUNT_SID", "MYSQL_HOST", "MYSQL_USER", "DATABASE_URL", "API_KEY", "JIRA_URL",
    "DEBUGGER_TOKEN", "SUPPORT_EMAIL",
])
def test_credentials_are_not_configuration_settings(key):
    assert not is_configuration_setting(key)
