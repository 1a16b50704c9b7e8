"""Importers (registry_app.importers): each source format read from the shared snapshots, normalisation,
merging rules and bad input. No database here: importers are pure."""

import json

import pytest

from registry_app.importers import SourceError, detect_format, read_catalogue
from registry_app.importers.common import (
    MAX_DESCRIPTION,
    CredentialRecord,
    LaunchRecord,
    ServerRecord,
    ToolRecord,
    guess_kind,
    normalise_category,
    normalise_repository_url,
)
from registry_app.importers.merge import MergePlanner, merge_records, popularity
from registry_app.importers.native import entry_from_record, record_from_entry
from registry_app.importers.official import record_from_server_json
from registry_app.importers.registry_api import parse_timestamp
from tests.shared import SHARED

CATALOGUE = SHARED / "catalogue"
needs_shared = pytest.mark.skipif(not CATALOGUE.is_dir(), reason=f"shared catalogue snapshots not at {CATALOGUE}")


@pytest.fixture(scope="module")
def official():
    return read_catalogue(CATALOGUE / "official-registry" / "production_servers.json")


@pytest.fixture(scope="module")
def docker():
    return read_catalogue(CATALOGUE / "docker-mcp-registry")


@pytest.fixture(scope="module")
def toolsdk():
    return read_catalogue(CATALOGUE / "toolsdk-mcp-registry")


@pytest.fixture(scope="module")
def awesome():
    return read_catalogue(CATALOGUE / "punkpeye-awesome-mcp-servers" / "README.md")


def by_id(batch) -> dict[str, ServerRecord]:
    return {r.source_id: r for r in batch.records}


# --- the shared snapshots -------------------------------------------------------------------------------------


@needs_shared
def test_formats_are_detected_from_content():
    assert detect_format(CATALOGUE / "official-registry" / "production_servers.json") == "official"
    assert detect_format(CATALOGUE / "docker-mcp-registry") == "docker"
    assert detect_format(CATALOGUE / "toolsdk-mcp-registry") == "toolsdk"
    assert detect_format(CATALOGUE / "punkpeye-awesome-mcp-servers" / "README.md") == "awesome"


@needs_shared
def test_official_dump_keeps_only_latest_versions(official):
    assert official.source == "official"
    assert len(official.records) == 461
    assert len(by_id(official)) == 461
    assert official.notes == ["328 older versions ignored (not isLatest)"]
    assert official.skipped == []


@needs_shared
def test_official_notion_is_a_vendor_remote(official):
    notion = by_id(official)["com.notion/mcp"]
    assert notion.name == "Notion"
    assert notion.slug == "notion-mcp"
    assert notion.official is True
    assert [(r.kind, r.transport, r.url) for r in notion.launch] == [
        ("remote", "streamable-http", "https://mcp.notion.com/mcp"),
        ("remote", "sse", "https://mcp.notion.com/sse"),
    ]
    assert notion.location.startswith("production_servers.json#servers[")
    assert "mcpreg:com.notion/mcp" in notion.merge_keys()


def test_official_remote_url_variables_are_settings_and_needed_unless_defaulted():
    server = {"name": "io.example/acme", "description": "Acme", "remotes": [{
        "type": "streamable-http", "url": "https://{tenant}.acme.example/mcp/{region}",
        "variables": {"tenant": {"description": "Your Acme tenant", "isRequired": False},
                      "region": {"description": "Data region", "default": "eu"}},
    }]}
    record = record_from_server_json(server, {}, source="official", location="t", warnings=[])
    (recipe,) = record.launch
    assert recipe.url == "https://${tenant}.acme.example/mcp/${region}"
    creds = {c.key: c for c in record.credentials}
    assert creds["tenant"].location == "arg" and creds["region"].location == "arg"
    # The URL cannot be built without a value: no default means required, whatever isRequired says.
    assert creds["tenant"].required is True
    assert creds["region"].required is None and creds["region"].default == "eu"


@needs_shared
def test_official_package_env_flags_and_recipe(official):
    youtube = by_id(official)["io.github.kirbah/mcp-youtube"]
    assert youtube.official is False  # a third party's YouTube server
    (recipe,) = youtube.launch
    assert (recipe.kind, recipe.command, recipe.args) == ("npm", "npx", ["-y", "@kirbah/mcp-youtube@0.2.6"])
    creds = {c.key: c for c in youtube.credentials}
    assert (creds["YOUTUBE_API_KEY"].required, creds["YOUTUBE_API_KEY"].secret) == (True, True)
    assert creds["YOUTUBE_API_KEY"].description == "YouTube Data API v3 key"
    assert creds["MDB_MCP_CONNECTION_STRING"].required is None  # absent in the source: unknown, not False


@needs_shared
def test_official_header_template_becomes_a_credential(official):
    slack = by_id(official)["ai.smithery/smithery-ai-slack"]
    remote = slack.launch[0]
    assert remote.headers == {"Authorization": "Bearer ${smithery_api_key}"}
    (cred,) = slack.credentials
    assert (cred.key, cred.location) == ("smithery_api_key", "header")
    assert slack.repository_url == "https://github.com/smithery-ai/mcp-servers"
    assert slack.repository_subfolder == "slack"


@needs_shared
def test_docker_catalog_secrets_oauth_and_container_recipe(docker):
    assert len(docker.records) == 328
    github = by_id(docker)["github-official"]
    assert github.official is True
    assert github.repository_url == "https://github.com/github/github-mcp-server"
    (token,) = github.credentials
    assert token.key == "GITHUB_PERSONAL_ACCESS_TOKEN"
    assert (token.required, token.secret, token.location) == (True, True, "env")
    assert "OAuth sign-in with github" in token.description
    (recipe,) = github.launch
    assert recipe.command == "docker"
    assert recipe.args == [
        "run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"]
    # Entries the catalog titles "(Archived)" (upstream code no longer maintained) are deprecated, the rest active.
    deprecated = sorted(r.source_id for r in docker.records if r.status == "deprecated")
    assert deprecated == ["SQLite", "aws-kb-retrieval-server", "everart", "github", "gitlab", "google-maps",
                          "puppeteer", "sentry", "slack"]
    assert all(r.name.endswith("(Archived)") == (r.status == "deprecated") for r in docker.records)


@needs_shared
def test_docker_parameters_env_templates_and_tools(docker):
    servers = by_id(docker)
    notion = servers["notion"]
    headers = notion.launch[0].env["OPENAPI_MCP_HEADERS"]
    assert headers.startswith('{"Authorization": "Bearer ${INTERNAL_INTEGRATION_TOKEN}"')
    assert [c.key for c in notion.credentials] == ["INTERNAL_INTEGRATION_TOKEN"]
    aks = {c.key: c for c in servers["aks"].credentials}
    kubeconfig = aks["kubeconfig"]
    assert (kubeconfig.location, kubeconfig.kind, kubeconfig.required) == ("file", "file_path", True)
    assert (aks["access_level"].location, aks["access_level"].default) == ("arg", "readonly")
    assert "--access-level=${access_level}" in servers["aks"].launch[0].args
    apify = servers["apify"]
    assert apify.launch[0].headers == {"Authorization": "Bearer ${APIFY_API_KEY}"}
    assert apify.credentials[0].location == "header"
    alfresco_tools = {t.name: t for t in servers["alfresco"].tools}
    assert alfresco_tools["search_nodes"].input_schema["required"] == ["query", "ticket"]


@needs_shared
def test_toolsdk_registry_dedupes_package_names(toolsdk):
    assert len(toolsdk.records) == 4678  # distinct packageName values
    duplicates = [p for p in toolsdk.skipped if p.reason.startswith("duplicate packageName")]
    assert len(duplicates) == 4908 - 4678
    a2a = by_id(toolsdk)["a2a-bridge"]
    assert a2a.location == "packages/other-tools-and-integrations/a2a-bridge.json"  # the index's canonical file
    assert set(a2a.categories) == {"other-tools-and-integrations", "aggregators"}
    dup = next(p for p in duplicates if "'a2a-bridge'" in p.reason)
    assert dup.location == "packages/aggregators/a2a-bridge.json"


@needs_shared
def test_toolsdk_entry_with_env_and_tools(toolsdk):
    ses = by_id(toolsdk)["@toolsdk.ai/aws-ses-mcp"]
    assert ses.name == "AWS SES Email"
    assert ses.categories == ["communication"]
    assert ses.signals["validated"] is True
    assert [t.name for t in ses.tools] == ["send-email"]
    assert [c.key for c in ses.credentials] == [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "SENDER_EMAIL_ADDRESS", "REPLY_TO_EMAIL_ADDRESSES"]
    assert all(c.required for c in ses.credentials)
    assert ses.launch[0].args == ["-y", "@toolsdk.ai/aws-ses-mcp"]
    pictify = by_id(toolsdk)["@toolsdk-remote/pictify"]
    assert [(r.kind, r.url) for r in pictify.launch] == [("remote", "https://mcp.pictify.io")]
    tuning = by_id(toolsdk)["tuningengines-cli"]
    assert tuning.launch[0].args == ["-y", "--package", "tuningengines-cli@0.4.17", "te", "mcp", "serve"]
    with_tools = sum(1 for r in toolsdk.records if r.tools)
    assert 700 < with_tools < 900


@needs_shared
def test_awesome_list_entries_categories_and_official_flag(awesome):
    assert len(awesome.records) > 1300
    discourse = by_id(awesome)["https://github.com/discourse/discourse-mcp"]
    assert discourse.official is True  # 🎖️
    assert discourse.name == "discourse-mcp"
    assert discourse.categories == ["communication"]
    assert discourse.description.startswith("Official Discourse MCP server for forum integration.")
    assert discourse.location.startswith("README.md:")
    assert "ruby" in discourse.signals["flags"]
    relisted = [p for p in awesome.problems if p.reason.startswith("listed again")]
    assert relisted and all(p.location.startswith("README.md:") for p in relisted)
    assert sum(1 for r in awesome.records if r.official) > 50


# --- normalisation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, expected", [
    ("https://github.com/Owner/Repo.git", ("https://github.com/owner/repo", "")),
    ("http://www.github.com/owner/repo/", ("https://github.com/owner/repo", "")),
    ("git+https://github.com/o/r.git", ("https://github.com/o/r", "")),
    ("git@github.com:Owner/Repo.git", ("https://github.com/owner/repo", "")),
    ("github.com/o/r", ("https://github.com/o/r", "")),
    ("https://github.com/o/r/tree/main/src/Filesystem", ("https://github.com/o/r", "src/filesystem")),
    ("https://github.com/o/r/blob/main/servers/x/README.md", ("https://github.com/o/r", "servers/x")),
    ("https://github.com/o/r?tab=readme-ov-file#install", ("https://github.com/o/r", "")),
    ("https://gitlab.com/group/sub/repo/-/tree/main/mcp", ("https://gitlab.com/group/sub/repo", "mcp")),
    ("https://docs.example.ai/mcp", ("", "")),
    ("https://github.com/only-owner", ("", "")),
    ("", ("", "")),
])
def test_repository_urls_are_normalised(url, expected):
    assert normalise_repository_url(url) == expected


@pytest.mark.parametrize("key, kind", [
    ("GITHUB_TOKEN", "token"), ("SLACK_BOT_TOKEN", "token"), ("OPENAI_API_KEY", "api_key"),
    ("AWS_SECRET_ACCESS_KEY", "api_key"), ("GOOGLE_CLIENT_ID", "oauth_client"),
    ("GOOGLE_CLIENT_SECRET", "oauth_client"),
    ("DB_PASSWORD", "password"), ("CREDENTIALS_PATH", "file_path"), ("KEY_FILE", "file_path"),
    ("DATABASE_URL", "url"), ("REDIS_HOST", "url"), ("LOG_LEVEL", "setting"), ("Authorization", "token"),
    ("x-api-key", "api_key"),
])
def test_credential_kind_is_guessed_from_the_key(key, kind):
    assert guess_kind(key) == kind


def test_categories_map_to_one_taxonomy():
    assert normalise_category("finance--fintech") == "finance-fintech"
    assert normalise_category("Finance & Fintech") == "finance-fintech"
    assert normalise_category("search") == "search-data-extraction"
    assert normalise_category("uncategorized") == ""


def test_registry_timestamps_with_nanoseconds():
    assert parse_timestamp("2025-09-11T22:25:50.737872147Z").isoformat() == "2025-09-11T22:25:50.737872+00:00"
    assert parse_timestamp("2025-09-01").isoformat() == "2025-09-01T00:00:00+00:00"
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


# --- merging -------------------------------------------------------------------------------------------------


def _record(source: str, **fields) -> ServerRecord:
    defaults = {"source_id": f"{source}-id", "location": f"{source}.json#0", "name": f"{source} name"}
    return ServerRecord(source=source, **{**defaults, **fields})


def test_merge_precedence_and_unions():
    official = _record(
        "official", name="gmail", description="Short.", repository_url="https://github.com/acme/gmail-mcp",
        credentials=[CredentialRecord("GMAIL_TOKEN", required=True, secret=True, description="Token")],
        launch=[LaunchRecord("npm", "@acme/gmail", "1.2.0", command="npx", args=["-y", "@acme/gmail@1.2.0"])],
        extra_keys=["mcpreg:com.acme/gmail"], signals={"official_registry": True}, official=True,
    )
    docker = _record(
        "docker", name="Gmail", description="A much longer description of what the Gmail server does.",
        repository_url="https://github.com/acme/gmail-mcp", categories=["communication"],
        tools=[ToolRecord("send_email", "Send", {"type": "object"})],
        credentials=[CredentialRecord("GMAIL_TOKEN", required=False, secret=True,
                                      description="The OAuth token of the Gmail account to use")],
        signals={"docker": True},
    )
    toolsdk = _record(
        "toolsdk", categories=["communication", "productivity"], license="MIT",
        tools=[ToolRecord("send_email", "Send an email (toolsdk)"), ToolRecord("search", "Search mail")],
        credentials=[CredentialRecord("GMAIL_LABEL", description="YOUR_LABEL")], signals={"validated": True},
    )
    merged = merge_records([toolsdk, docker, official])
    assert merged.name == "Gmail"  # Docker's curated title
    assert merged.description.startswith("A much longer")
    assert merged.categories == ["communication", "productivity"]
    assert merged.license == "MIT"
    assert merged.official is True
    assert {t.name: (t.source, t.input_schema is not None) for t in merged.tools} == {
        "send_email": ("docker", True), "search": ("toolsdk", False)}
    creds = {c.key: c for c in merged.credentials}
    assert creds["GMAIL_TOKEN"].required is True  # the official registry's flag beats Docker's
    assert creds["GMAIL_TOKEN"].description == "The OAuth token of the Gmail account to use"  # longest
    assert creds["GMAIL_TOKEN"].kind == "token"
    assert (creds["GMAIL_LABEL"].description, creds["GMAIL_LABEL"].example) == ("", "YOUR_LABEL")  # placeholder
    assert (creds["GMAIL_LABEL"].required, creds["GMAIL_LABEL"].secret) == (False, False)
    assert [p.source for p in merged.provenance] == ["toolsdk", "docker", "official"]
    assert "mcpreg:com.acme/gmail" in merged.extra_keys
    # official 0.30 + registry 0.15 + docker 0.15 + three catalogues 0.10 + tools 0.10 + creds 0.10
    # + validated 0.05 + recipe 0.05
    assert popularity(merged) == 1.0
    assert popularity(merge_records([_record("awesome")])) == 0.0


def test_monorepo_records_of_one_source_do_not_merge_on_the_bare_repository():
    repo = "https://github.com/acme/servers"
    a = _record("toolsdk", source_id="a", repository_url=repo, repository_subfolder="src/a")
    b = _record("toolsdk", source_id="b", repository_url=repo, repository_subfolder="src/b")
    root = _record("awesome", source_id="root", repository_url=repo)
    sub_a = _record("docker", source_id="da", repository_url=repo, repository_subfolder="src/a")
    planner = MergePlanner()
    ambiguous = MergePlanner.ambiguous_keys([a, b])
    assert f"repo:{repo}" in ambiguous
    for n, record in enumerate([a, b]):
        assert planner.find(record, record.merge_keys(), ambiguous) is None
        planner.add(n, record.source, record.merge_keys())
    assert planner.find(root, root.merge_keys(), set()) is None  # which of the two? neither
    assert planner.find(sub_a, sub_a.merge_keys(), set()) == 0  # same subfolder: the same server


def test_native_entries_round_trip():
    record = merge_records([_record(
        "docker", name="Slack", slug="slack", description="Slack.", repository_url="https://github.com/a/slack",
        categories=["communication"], tools=[ToolRecord("post", "Post", {"type": "object"})],
        credentials=[CredentialRecord("SLACK_BOT_TOKEN", required=True, secret=True, example="xoxb-1")],
        launch=[LaunchRecord("oci", "mcp/slack", command="docker", args=["run", "-i", "--rm", "mcp/slack"])],
        signals={"docker": True},
    )])
    entry = json.loads(json.dumps(entry_from_record(record)))
    assert "signals" not in entry  # "docker" is said by `sources`
    back = record_from_entry(entry, "servers.json#servers[0]", [])
    assert (back.slug, back.name, back.repository_url, back.categories) == ("slack", "Slack", record.repository_url,
                                                                           ["communication"])
    assert back.tools[0].input_schema == {"type": "object"} and back.tools[0].source == "docker"
    assert (back.credentials[0].key, back.credentials[0].required, back.credentials[0].kind) == (
        "SLACK_BOT_TOKEN", True, "token")
    assert back.launch[0].args == ["run", "-i", "--rm", "mcp/slack"]
    assert [(p.source, p.source_id) for p in back.provenance] == [("docker", "docker-id")]
    assert popularity(merge_records([back])) == popularity(record)


# --- bad input ---------------------------------------------------------------------------------------------------


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "servers.json"
    path.write_text('{"servers": [\n{"name": "a/b",\n}]}')
    with pytest.raises(SourceError, match=r"malformed JSON at line 3 column 1"):
        read_catalogue(path, "official")


def test_unknown_format_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="cannot tell the format"):
        read_catalogue(tmp_path / "notes.txt")
    with pytest.raises(SourceError, match="unknown format 'csv'"):
        read_catalogue(tmp_path / "notes.txt", "csv")
    with pytest.raises(SourceError, match="does not exist"):
        read_catalogue(tmp_path / "missing.json")


def test_bad_records_are_skipped_with_their_location_and_the_rest_kept(tmp_path):
    path = tmp_path / "dump.json"
    good = {"name": "io.github.x/good", "description": "Good", "version": "1.0.0"}
    newer = {**good, "description": "Newer"}
    path.write_text(json.dumps({"servers": [good, "not an object", {"description": "no name"}, newer]}))
    batch = read_catalogue(path, "official")
    assert [(r.source_id, r.description) for r in batch.records] == [("io.github.x/good", "Newer")]
    assert [(p.location, p.reason) for p in batch.skipped] == [
        ("dump.json#servers[1]", "not a server object"), ("dump.json#servers[2]", "server has no name"),
        ("dump.json#servers[0]", "duplicate server name 'io.github.x/good': superseded by dump.json#servers[3]")]


def test_huge_descriptions_are_truncated_and_nul_bytes_removed(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text(json.dumps({"servers": [
        {"name": "io.github.x/big", "description": "x" * (10 * 1024 * 1024), "version": "1"},
        {"name": "io.github.x/nul", "description": "bad\u0000byte", "version": "1",
         "packages": [{"registryType": "npm", "identifier": "nul\u0000pkg", "version": "1",
                       "transport": {"type": "stdio"}}]},
    ]}))
    batch = read_catalogue(path, "official")
    big, nul = batch.records
    assert len(big.description) == MAX_DESCRIPTION
    assert nul.description == "badbyte" and nul.launch[0].identifier == "nulpkg"
    assert [(p.location, p.reason, p.skipped) for p in batch.problems] == [
        ("dump.json#servers[0]", "description truncated from 10,485,760 to 10,000 characters", False),
        ("dump.json#servers[1]", "NUL bytes removed", False),
    ]


def test_docker_folder_with_broken_yaml_skips_that_server(tmp_path):
    for name, text in {"ok": "name: ok\nimage: mcp/ok\ntype: server\nabout:\n  title: OK\n",
                       "broken": "name: broken\nabout: [unclosed\n", "nameless": "image: mcp/x\n"}.items():
        (tmp_path / "servers" / name).mkdir(parents=True)
        (tmp_path / "servers" / name / "server.yaml").write_text(text)
    (tmp_path / "servers" / "ok" / "tools.json").write_text("{not json")
    batch = read_catalogue(tmp_path)
    assert [r.source_id for r in batch.records] == ["ok"]
    reasons = {p.location: p.reason for p in batch.problems}
    assert reasons["servers/broken/server.yaml"].startswith("malformed YAML at line")
    assert reasons["servers/nameless/server.yaml"] == "no name"
    assert reasons["servers/ok/server.yaml"].startswith("tools.json ignored: malformed JSON")


def test_toolsdk_folder_with_broken_package_file(tmp_path):
    (tmp_path / "packages" / "databases").mkdir(parents=True)
    (tmp_path / "packages" / "databases" / "good.json").write_text(json.dumps(
        {"packageName": "good-mcp", "description": "Good", "url": "https://github.com/a/good", "runtime": "node"}))
    (tmp_path / "packages" / "databases" / "bad.json").write_text("{")
    batch = read_catalogue(tmp_path)
    assert batch.source == "toolsdk"
    assert [r.source_id for r in batch.records] == ["good-mcp"]
    assert batch.skipped[0].location == "packages/databases/bad.json"
    assert batch.skipped[0].reason.startswith("malformed JSON")


def test_awesome_list_without_a_server_section_is_refused(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# My list\n\n## Server Implementations\n### <a name=\"x\"></a>X\n"
                    "- [a/b](https://github.com/a/b) - ok\n- [broken](not a url) - no\n")
    batch = read_catalogue(path)
    assert [r.source_id for r in batch.records] == ["https://github.com/a/b"]
    assert batch.skipped[0].location == "README.md:6"
    other = tmp_path / "OTHER.md"
    other.write_text("# Something else\n- [a](https://github.com/a/b)\n")
    with pytest.raises(SourceError, match="no '## Server Implementations' section"):
        read_catalogue(other, "awesome")


def test_native_duplicate_slugs_and_wrong_version(tmp_path):
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"format": "mcpagent-catalogue", "version": 1, "servers": [
        {"slug": "a", "name": "A"}, {"slug": "a", "name": "A again"}, {"name": ""}]}))
    batch = read_catalogue(path)
    assert [r.slug for r in batch.records] == ["a"]
    assert [(p.location, p.reason) for p in batch.skipped] == [
        ("servers.json#servers[1]", "duplicate slug 'a' (first at servers.json#servers[0])"),
        ("servers.json#servers[2]", "no name")]
    path.write_text(json.dumps({"format": "mcpagent-catalogue", "version": 9, "servers": []}))
    with pytest.raises(SourceError, match="version 9 is not supported"):
        read_catalogue(path)
