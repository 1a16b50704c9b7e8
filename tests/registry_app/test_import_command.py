"""import_catalogue / load_default_catalogue / build_default_catalogue against the real database: merging,
idempotency, staff edits surviving imports, bad input never half-committed."""

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from registry_app.importers.common import pypi_name
from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer, ServerSource, ServerTool
from tests.shared import SHARED

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = SHARED / "catalogue"
OFFICIAL = CATALOGUE / "official-registry" / "production_servers.json"
DOCKER = CATALOGUE / "docker-mcp-registry"
TOOLSDK = CATALOGUE / "toolsdk-mcp-registry"
AWESOME = CATALOGUE / "punkpeye-awesome-mcp-servers" / "README.md"
needs_shared = pytest.mark.skipif(not CATALOGUE.is_dir(), reason=f"shared catalogue snapshots not at {CATALOGUE}")


@pytest.fixture
def empty_catalogue(db):
    """An empty catalogue inside the test's transaction (the session may hold the committed bundled one)."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE registry_app_mcpserver, registry_app_syncstate CASCADE")


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def counts(output: str) -> dict[str, int]:
    """{'created': n, 'updated': n, ...} from the summary line."""
    line = [text for text in output.splitlines() if " created, " in text][-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (created|updated|merged|unchanged|skipped)", line)}


def official_snapshot(tmp_path: Path, edit=None) -> Path:
    """A copy of the official dump, optionally edited (a "newer snapshot")."""
    data = json.loads(OFFICIAL.read_text())
    if edit:
        edit(data["servers"])
    path = tmp_path / "production_servers.json"
    path.write_text(json.dumps(data))
    return path


def latest(entries: list[dict], name: str) -> dict:
    return next(e for e in entries if e["name"] == name
                and e["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"])


@needs_shared
def test_official_import_is_idempotent(empty_catalogue):
    first = run("import_catalogue", str(OFFICIAL))
    assert counts(first) == {"created": 461, "updated": 0, "merged": 0, "unchanged": 0, "skipped": 0}
    assert "note: 328 older versions ignored (not isLatest)" in first
    assert McpServer.objects.count() == 461 == ServerSource.objects.filter(source="official").count()
    notion = McpServer.objects.get(sources__source_id="com.notion/mcp")
    assert (notion.slug, notion.name, notion.official) == ("notion-mcp", "Notion", True)
    assert notion.search_document.startswith("Notion")  # search fields refreshed in the same import
    assert list(notion.launch_recipes.values_list("transport", "url")) == [
        ("streamable-http", "https://mcp.notion.com/mcp"), ("sse", "https://mcp.notion.com/sse")]
    youtube = McpServer.objects.get(sources__source_id="io.github.kirbah/mcp-youtube")
    recipe = youtube.launch_recipes.get()
    assert (recipe.command, recipe.args) == ("npx", ["-y", "@kirbah/mcp-youtube@0.2.6"])
    key = youtube.credentials.get(key="YOUTUBE_API_KEY")
    assert (key.required, key.secret, key.kind, key.source) == (True, True, "api_key", "official")
    second = run("import_catalogue", str(OFFICIAL))
    assert counts(second) == {"created": 0, "updated": 0, "merged": 0, "unchanged": 461, "skipped": 0}
    assert McpServer.objects.count() == 461


@needs_shared
def test_same_repository_from_two_sources_is_one_server(empty_catalogue):
    run("import_catalogue", str(OFFICIAL))
    output = run("import_catalogue", str(DOCKER))
    assert counts(output)["merged"] > 10
    github = McpServer.objects.get(sources__source="docker", sources__source_id="github-official")
    assert github.repository_url == "https://github.com/github/github-mcp-server"
    assert sorted(github.sources.values_list("source", "source_id")) == [
        ("docker", "github-official"), ("official", "io.github.github/github-mcp-server")]
    assert github.name == "GitHub Official"  # Docker's title wins
    assert github.official is True
    token = github.credentials.get(key="GITHUB_PERSONAL_ACCESS_TOKEN")
    assert token.secret is True and "personal access token" in token.description
    assert set(github.launch_recipes.values_list("kind", flat=True)) >= {"oci"}
    prometheus = McpServer.objects.get(sources__source="docker", sources__source_id="prometheus")
    assert {"PROMETHEUS_URL", "PROMETHEUS_USERNAME", "PROMETHEUS_PASSWORD", "PROMETHEUS_TOKEN"} <= set(
        prometheus.credentials.values_list("key", flat=True))  # the union of both sources
    assert McpServer.objects.filter(sources__source_id="dynatrace-mcp-server").get().sources.count() == 2
    assert counts(run("import_catalogue", str(DOCKER)))["unchanged"] == 328


@needs_shared
def test_toolsdk_import_twice(empty_catalogue):
    first = run("import_catalogue", str(TOOLSDK))
    merged = counts(first)["merged"]  # a few toolsdk entries are one server under two package names
    assert counts(first) == {"created": 4678 - merged, "updated": 0, "merged": merged, "unchanged": 0, "skipped": 230}
    assert merged < 100
    assert "skipped packages/aggregators/a2a-bridge.json: duplicate packageName 'a2a-bridge'" in first
    ses = McpServer.objects.get(sources__source_id="@toolsdk.ai/aws-ses-mcp")
    assert list(ses.tools.values_list("name", flat=True)) == ["send-email"]
    assert ses.credentials.count() == 5
    assert ses.popularity == 0.3  # tools 0.10 + credential metadata 0.10 + validated 0.05 + recipe 0.05
    second = run("import_catalogue", str(TOOLSDK))
    assert counts(second) == {"created": 0, "updated": 0, "merged": 0, "unchanged": 4678, "skipped": 230}


@needs_shared
def test_awesome_list_import_twice_and_merge_with_docker(empty_catalogue):
    run("import_catalogue", str(DOCKER))
    first = run("import_catalogue", str(AWESOME))
    assert counts(first)["merged"] > 30 and counts(first)["skipped"] == 9
    github = McpServer.objects.get(sources__source="docker", sources__source_id="github-official")
    assert sorted(github.sources.values_list("source", flat=True)) == ["awesome", "docker"]
    assert "developer-tools" in github.categories and "version-control" in github.categories
    again = run("import_catalogue", str(AWESOME))
    assert (counts(again)["created"], counts(again)["updated"], counts(again)["merged"]) == (0, 0, 0)


@needs_shared
def test_newer_snapshot_updates_what_changed_and_keeps_staff_edits(empty_catalogue, tmp_path):
    run("import_catalogue", str(OFFICIAL))
    youtube = McpServer.objects.get(sources__source_id="io.github.kirbah/mcp-youtube")
    youtube.description = "Staff wording."
    youtube.curated_fields = ["description"]
    youtube.save()
    ServerTool.objects.create(server=youtube, name="staff_tool", description="Added by staff", source="staff")
    staff_key = youtube.credentials.get(key="YOUTUBE_API_KEY")
    staff_key.description, staff_key.source = "Create it in the Google Cloud console.", "staff"
    staff_key.save()
    hidden = McpServer.objects.get(sources__source_id="com.notion/mcp")
    hidden.status = McpServer.Status.HIDDEN
    hidden.save()

    def newer(entries):
        entry = latest(entries, "io.github.kirbah/mcp-youtube")
        entry["description"] = "A newer description from the registry."
        entry["packages"][0]["version"] = "0.3.0"
        entry["packages"][0]["environmentVariables"].append(
            {"name": "YOUTUBE_REGION", "description": "Region code", "isRequired": False})
        entry["packages"][0]["environmentVariables"][0]["description"] = "Changed upstream"
        latest(entries, "com.notion/mcp")["description"] = "Official Notion MCP server, now hosted"

    output = run("import_catalogue", str(official_snapshot(tmp_path, newer)))
    assert counts(output) == {"created": 0, "updated": 2, "merged": 0, "unchanged": 459, "skipped": 0}
    youtube.refresh_from_db()
    assert youtube.description == "Staff wording."  # curated
    assert youtube.launch_recipes.get().args == ["-y", "@kirbah/mcp-youtube@0.3.0"]  # not curated: updated
    assert youtube.tools.get(name="staff_tool").source == "staff"
    staff_key.refresh_from_db()
    assert (staff_key.description, staff_key.source) == ("Create it in the Google Cloud console.", "staff")
    assert youtube.credentials.get(key="YOUTUBE_REGION").required is False
    hidden.refresh_from_db()
    assert hidden.status == McpServer.Status.HIDDEN
    assert hidden.description == "Official Notion MCP server, now hosted"


@needs_shared
def test_removed_upstream_tools_and_credentials_go_away(empty_catalogue, tmp_path):
    run("import_catalogue", str(OFFICIAL))

    def drop_env(entries):
        latest(entries, "io.github.kirbah/mcp-youtube")["packages"][0]["environmentVariables"].pop()

    run("import_catalogue", str(official_snapshot(tmp_path, drop_env)))
    youtube = McpServer.objects.get(sources__source_id="io.github.kirbah/mcp-youtube")
    assert list(youtube.credentials.values_list("key", flat=True)) == ["YOUTUBE_API_KEY"]


def test_malformed_file_is_a_clear_error_and_writes_nothing(empty_catalogue, tmp_path):
    path = tmp_path / "servers.json"
    path.write_text('{"servers": [{"name": "a/b", "description": "x"},')
    with pytest.raises(CommandError, match=r"malformed JSON at line 1"):
        run("import_catalogue", str(path), format="official")
    with pytest.raises(CommandError, match="cannot tell the format"):
        run("import_catalogue", str(tmp_path))
    with pytest.raises(CommandError, match="does not exist"):
        run("import_catalogue", str(tmp_path / "nope.json"))
    assert McpServer.objects.count() == 0


def test_skipped_records_are_reported_and_the_rest_imported(empty_catalogue, tmp_path):
    path = tmp_path / "dump.json"
    path.write_text(json.dumps({"servers": [
        {"name": "io.github.a/one", "description": "One", "version": "1"},
        {"description": "no name"},
        {"name": "io.github.a/huge", "description": "y" * (10 * 1024 * 1024), "version": "1"},
        {"name": "io.github.a/nul\u0000", "description": "N\u0000UL", "version": "1"},
    ]}))
    output = run("import_catalogue", str(path))
    assert "skipped dump.json#servers[1]: server has no name" in output
    assert "warning dump.json#servers[2]: description truncated from 10,485,760 to 10,000 characters" in output
    assert "warning dump.json#servers[3]: NUL bytes removed" in output
    assert counts(output) == {"created": 3, "updated": 0, "merged": 0, "unchanged": 0, "skipped": 1}
    assert len(McpServer.objects.get(sources__source_id="io.github.a/huge").description) == 10_000
    assert McpServer.objects.get(sources__source_id="io.github.a/nul").description == "NUL"


def test_slugs_are_stable_and_collisions_get_a_suffix(empty_catalogue, tmp_path):
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"format": "mcpagent-catalogue", "version": 1, "servers": [
        {"slug": "gmail", "name": "Gmail", "repository_url": "https://github.com/a/gmail"},
        {"slug": "gmail", "name": "Gmail again"}]}))
    output = run("import_catalogue", str(path))
    assert "skipped servers.json#servers[1]: duplicate slug 'gmail' (first at servers.json#servers[0])" in output
    yaml_path = tmp_path / "docker" / "servers" / "gmail" / "server.yaml"
    yaml_path.parent.mkdir(parents=True)
    yaml_path.write_text("name: gmail\nimage: mcp/gmail\ntype: server\nabout:\n  description: Another Gmail\n")
    run("import_catalogue", str(tmp_path / "docker"))
    assert sorted(McpServer.objects.values_list("slug", flat=True)) == ["gmail", "gmail-2"]
    yaml_path.write_text("name: gmail\nimage: mcp/gmail\ntype: server\nabout:\n  description: Renamed upstream\n"
                         "  title: Google Mail\n")
    assert counts(run("import_catalogue", str(tmp_path / "docker")))["updated"] == 1
    renamed = McpServer.objects.get(slug="gmail-2")  # derived once, never changed
    assert (renamed.name, renamed.description) == ("Google Mail", "Renamed upstream")


def test_a_server_named_like_an_api_route_gets_a_reachable_slug(empty_catalogue, tmp_path, api):
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"format": "mcpagent-catalogue", "version": 1, "servers": [
        {"slug": "search", "name": "Search", "description": "Web search engine"}]}))
    run("import_catalogue", str(path))
    assert list(McpServer.objects.values_list("slug", flat=True)) == ["search-2"]
    assert api.get("/api/servers/search-2").json()["name"] == "Search"


def test_a_database_failure_rolls_the_whole_import_back(empty_catalogue, tmp_path):
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"format": "mcpagent-catalogue", "version": 1, "servers": [
        {"slug": "a", "name": "A", "tools": [{"name": "t"}]}, {"slug": "b", "name": "B"}]}))
    with connection.cursor() as cursor:  # a real database error halfway through the writes
        cursor.execute("CREATE FUNCTION test_fail_tool() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'simulated failure'; END $$")
        cursor.execute("CREATE TRIGGER test_fail_tool BEFORE INSERT ON registry_app_servertool "
                       "FOR EACH ROW EXECUTE FUNCTION test_fail_tool()")
    with pytest.raises(CommandError, match="rolled back, nothing was written: simulated failure"):
        run("import_catalogue", str(path))
    assert McpServer.objects.count() == 0 and ServerSource.objects.count() == 0


def test_dry_run_writes_nothing(empty_catalogue, tmp_path):
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"format": "mcpagent-catalogue", "version": 1, "servers": [{"slug": "a", "name": "A"}]}))
    output = run("import_catalogue", str(path), dry_run=True)
    assert "dry run (rolled back): native: 1 created" in output
    assert McpServer.objects.count() == 0


def test_default_catalogue_loads_and_is_idempotent(empty_catalogue):
    output = run("load_default_catalogue", no_embed=True)
    total = McpServer.objects.count()
    assert total >= 4000
    assert counts(output)["created"] == total
    # Most servers say how to start them; none through a PyPI package that PyPI does not have (package_checks.json).
    assert LaunchRecipe.objects.count() > total * 0.6
    missing = set(json.loads((ROOT / "config" / "package_checks.json").read_text())["pypi_missing"])
    assert len(missing) > 100
    pypi = {pypi_name(name) for name in LaunchRecipe.objects.filter(kind="pypi").values_list("identifier", flat=True)}
    assert len(pypi) > 500 and not pypi & missing
    assert CredentialRequirement.objects.filter(secret=True).count() > 1000
    assert McpServer.objects.filter(search_document="").count() == 0
    # Tidied as a vacuum would (search_index.tidy_tables): no full-text entries left in the GIN index's pending list,
    # which every search would scan, and the planner's statistics count the rows just written.
    with connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list('registry_server_fts'::regclass)")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'registry_app_servertool'")
        assert cursor.fetchone()[0] == ServerTool.objects.count() > 5000
    github = McpServer.objects.get(sources__source="native", sources__data__provenance__contains=[
        {"source": "official", "source_id": "io.github.github/github-mcp-server"}])
    assert {p["source"] for p in github.sources.get().data["provenance"]} >= {"official", "docker"}
    assert github.official is True
    skipped = run("load_default_catalogue", if_empty=True, no_embed=True)
    assert f"catalogue already has {total} servers" in skipped
    again = run("import_catalogue", str(ROOT / "config" / "servers.json"))
    assert (counts(again)["created"], counts(again)["updated"], counts(again)["unchanged"]) == (0, 0, total)


@needs_shared
def test_build_default_catalogue_matches_the_shipped_file(tmp_path):
    output = run("build_default_catalogue", shared=str(CATALOGUE), output=str(tmp_path / "servers.json"))
    built = json.loads((tmp_path / "servers.json").read_text())
    shipped = json.loads((ROOT / "config" / "servers.json").read_text())
    assert built["count"] == len(built["servers"]) >= 4000
    assert f"wrote {built['count']} servers" in output
    assert len({s["slug"] for s in built["servers"]}) == built["count"]
    # The shipped file is what the builder makes from these snapshots plus config/catalogue_corrections.json and
    # config/package_checks.json (rebuild and commit when one changes): a hand edit of servers.json would be lost.
    assert [s["slug"] for s in built["servers"]] == [s["slug"] for s in shipped["servers"]]
    assert built["servers"] == shipped["servers"]
    assert "15 servers corrected" in output and "770 launch recipes dropped" in output
    corrected = {s["slug"]: s for s in built["servers"]}
    assert "launch" not in corrected["trusted-gmail"] and corrected["notionhq-notion-mcp-server"]["official"] is True
    notice = (tmp_path / "CATALOGUE_NOTICE.md").read_text()
    for holder in ("Docker", "Kelly Peilin Chan", "Frank Fiegel", "MCP Contributors"):
        assert holder in notice
    assert "Permission is hereby granted" in notice
    notion = next(s for s in built["servers"] if any(src[1] == "com.notion/mcp" for src in s["sources"]))
    assert notion["official"] is True
