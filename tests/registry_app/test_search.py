"""Search: index fields, embeddings (stale detection, cache, HNSW index), hybrid ranking, bad input, the command.

Ranking is tested on a realistic hand-made catalogue (35 servers, 7 of them Slack servers) and, at the end, on the
real bundled catalogue (config/servers.json, loaded once per session through the shipped embedding cache).
"""

import json
from dataclasses import replace
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from mcpagent.errors import ApplicationError
from registry_app.embeddings import get_provider
from registry_app.curation import server_children_save
from registry_app.models import (
    CredentialRequirement,
    LaunchRecipe,
    McpServer,
    ServerEmbedding,
    ServerTool,
    ToolEmbedding,
)
from registry_app.search_index import (
    TOOLS,
    build_document,
    build_tool_document,
    cache_export,
    cache_load,
    cache_path,
    document_hash,
    embedding_expression,
    embedding_index_name,
    ensure_embedding_index,
    refresh_search_fields,
    server_embeddings_refresh,
    stale_server_ids,
    stale_tool_ids,
    tidy_tables,
    tool_cache_export,
    vector_literal,
    vector_type,
)
from registry_app.selectors import DEFAULT_PARAMS, implied_needs, query_clauses, server_search
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.django_db


def make_server(
    name: str,
    description: str = "",
    *,
    slug: str | None = None,
    repo: str = "",
    tools: list[tuple[str, str]] = (),
    credentials: list[str] = (),
    categories: list[str] = (),
    official: bool = False,
    verified: bool = False,
    popularity: float = 0.0,
    status: str = McpServer.Status.ACTIVE,
    recipe: bool = True,
) -> McpServer:
    slug = slug or name.lower().replace(" ", "-").replace("/", "-")
    server = McpServer.objects.create(
        slug=slug, name=name, description=description, repository_url=repo, categories=list(categories),
        official=official, verified=verified, popularity=popularity, status=status,
    )
    for tool_name, tool_description in tools:
        ServerTool.objects.create(server=server, name=tool_name, description=tool_description)
    for key in credentials:
        CredentialRequirement.objects.create(server=server, key=key, required=True, secret=True, kind="token")
    if recipe:
        LaunchRecipe.objects.create(server=server, kind="npm", identifier=f"@example/{slug}", command="npx")
    return server


SLACK_TOOLS = [
    ("slack_post_message", "Post a new message to a Slack channel"),
    ("slack_list_channels", "List public channels in the workspace"),
    ("slack_get_channel_history", "Get recent messages from a channel"),
    ("slack_reply_to_thread", "Reply to a specific message thread"),
]


def build_catalogue() -> dict[str, McpServer]:
    s = {}
    # Seven Slack servers; the vendor's official one must come first for Slack requests.
    s["slack_official"] = make_server(
        "Slack MCP Server", "Official Slack server: messages, channels, threads, users and search in your workspace.",
        slug="slack-official", repo="https://github.com/slackapi/slack-mcp-server", tools=SLACK_TOOLS,
        credentials=["SLACK_BOT_TOKEN", "SLACK_TEAM_ID"], categories=["communication"], official=True,
        verified=True, popularity=0.9,
    )
    s["slack_plain"] = make_server(
        "slack", "Send messages to Slack channels.", slug="slack-plain",
        repo="https://github.com/someone/slack", categories=["communication"], popularity=0.1, recipe=False,
    )
    s["slack_bot"] = make_server(
        "mcp-slack-bot", "A Slack bot for MCP that posts messages to a channel and reads replies.",
        repo="https://github.com/dev1/mcp-slack-bot", credentials=["SLACK_TOKEN"], popularity=0.2,
    )
    s["slack_notifier"] = make_server(
        "Slack Notifier", "Send notifications and alerts to Slack via incoming webhooks.",
        repo="https://github.com/dev2/slack-notifier-mcp", credentials=["SLACK_WEBHOOK_URL"], popularity=0.1,
    )
    s["slack_search"] = make_server(
        "slack-search-mcp", "Search Slack messages and files across channels.",
        repo="https://github.com/dev3/slack-search-mcp", popularity=0.05,
    )
    s["slack_archive"] = make_server(
        "Slack Exporter", "Export Slack conversations to JSON and markdown archives.",
        repo="https://github.com/dev4/slack-exporter", popularity=0.05,
    )
    s["slack_hidden"] = make_server(
        "Slack Pro", "The best Slack messaging server. Send Slack messages, Slack channels, Slack everything.",
        repo="https://github.com/spam/slack-pro", status=McpServer.Status.HIDDEN, popularity=1.0, official=True,
    )
    s["slack_deprecated"] = make_server(
        "Slack Legacy", "Deprecated Slack server: send a slack message (old API).",
        repo="https://github.com/old/slack-legacy", status=McpServer.Status.DEPRECATED, popularity=0.9,
    )
    s["gmail"] = make_server(
        "Gmail MCP Server", "Read, search, send and label emails in your Gmail account.",
        repo="https://github.com/gongrzhe/gmail-mcp-server",
        tools=[("search_emails", "Search emails with Gmail query syntax"), ("read_email", "Read an email by id"),
               ("send_email", "Send a new email")],
        credentials=["GMAIL_OAUTH_CLIENT"], categories=["communication"], popularity=0.6,
    )
    s["gmail_lite"] = make_server("gmail-lite", "Minimal Gmail reader.", repo="https://github.com/x/gmail-lite")
    s["outlook"] = make_server(
        "Outlook Mail", "Read and send email with Microsoft Outlook and Office 365 mailboxes.",
        repo="https://github.com/ms/outlook-mcp", categories=["communication"], popularity=0.5,
    )
    s["email_imap"] = make_server(
        "IMAP Email", "Read your inbox from any IMAP mail server and send mail over SMTP.",
        repo="https://github.com/y/imap-email-mcp", popularity=0.3,
    )
    s["notion"] = make_server(
        "Notion", "Official Notion MCP server: search, create and update pages and databases in Notion.",
        repo="https://github.com/makenotion/notion-mcp-server",
        tools=[("create_page", "Create a new page in a Notion workspace"), ("search", "Search pages")],
        credentials=["NOTION_TOKEN"], categories=["knowledge-memory"], official=True, popularity=0.8,
    )
    s["notion_lite"] = make_server(
        "notion-md", "Export Notion pages as markdown.", repo="https://github.com/z/notion-md", popularity=0.1,
    )
    s["obsidian"] = make_server(
        "Obsidian Vault", "Create and edit notes and pages in an Obsidian vault.",
        repo="https://github.com/o/obsidian-mcp", categories=["knowledge-memory"], popularity=0.4,
    )
    s["confluence"] = make_server(
        "Confluence", "Create and search Confluence wiki pages and spaces.",
        repo="https://github.com/atl/confluence-mcp", popularity=0.4,
    )
    s["github"] = make_server(
        "GitHub MCP Server", "GitHub's official MCP server: repositories, issues, pull requests, actions.",
        repo="https://github.com/github/github-mcp-server",
        tools=[("list_issues", "List issues in a GitHub repository"), ("create_pull_request", "Open a pull request")],
        credentials=["GITHUB_PERSONAL_ACCESS_TOKEN"], categories=["version-control"], official=True, popularity=0.95,
    )
    s["gitlab"] = make_server(
        "GitLab", "Manage GitLab projects, merge requests and issues.", repo="https://github.com/gl/gitlab-mcp",
        categories=["version-control"], popularity=0.5,
    )
    s["git"] = make_server(
        "Git", "Read, search and manipulate local Git repositories: log, diff, commit, branches.",
        repo="https://github.com/modelcontextprotocol/servers", categories=["version-control"], popularity=0.6,
    )
    s["postgres"] = make_server(
        "PostgreSQL", "Run read-only SQL queries against a PostgreSQL database and inspect schemas.",
        repo="https://github.com/pg/postgres-mcp", tools=[("query", "Run a read-only SQL query")],
        credentials=["DATABASE_URL"], categories=["databases"], popularity=0.6,
    )
    s["sqlite"] = make_server(
        "SQLite", "Query and modify a local SQLite database file.", repo="https://github.com/s/sqlite-mcp",
        categories=["databases"], popularity=0.4,
    )
    s["filesystem"] = make_server(
        "Filesystem", "Read, write, move and search files and directories on the local file system.",
        repo="https://github.com/modelcontextprotocol/filesystem",
        tools=[("read_file", "Read a file"), ("write_file", "Create or overwrite a file"), ("list_directory", "List")],
        categories=["file-systems"], popularity=0.7,
    )
    s["time"] = make_server(
        "Time", "Get the current date and time in any time zone and convert between time zones.",
        repo="https://github.com/modelcontextprotocol/time", tools=[("get_current_time", "Current time in a zone")],
        popularity=0.6,
    )
    s["weather"] = make_server(
        "OpenWeather", "Current weather conditions and multi-day forecasts for any city.",
        repo="https://github.com/w/openweather-mcp", credentials=["OPENWEATHER_API_KEY"], popularity=0.5,
    )
    s["fetch"] = make_server(
        "Fetch", "Fetch a web page from a URL and convert its content to markdown.",
        repo="https://github.com/modelcontextprotocol/fetch", popularity=0.7,
    )
    s["brave"] = make_server(
        "Brave Search", "Web and local search with the Brave Search API.", repo="https://github.com/b/brave-search",
        credentials=["BRAVE_API_KEY"], categories=["search-data-extraction"], popularity=0.6,
    )
    s["stripe"] = make_server(
        "Stripe", "Create customers, invoices, payment links and refunds with the Stripe API.",
        repo="https://github.com/stripe/agent-toolkit", credentials=["STRIPE_SECRET_KEY"], official=True,
        categories=["finance-fintech"], popularity=0.8,
    )
    s["jira"] = make_server(
        "Jira", "Create, search and transition Jira issues and sprints.", repo="https://github.com/atl/jira-mcp",
        popularity=0.5,
    )
    s["linear"] = make_server(
        "Linear", "Manage Linear issues, projects and cycles.", repo="https://github.com/linear/linear-mcp",
        official=True, popularity=0.5,
    )
    s["discord"] = make_server(
        "Discord", "Send and read messages in Discord servers and channels.", repo="https://github.com/d/discord-mcp",
        credentials=["DISCORD_TOKEN"], categories=["communication"], popularity=0.5,
    )
    s["telegram"] = make_server(
        "Telegram", "Send Telegram messages through a bot.", repo="https://github.com/t/telegram-mcp",
        categories=["communication"], popularity=0.4,
    )
    s["calendar"] = make_server(
        "Google Calendar", "List, create and update events in Google Calendar.",
        repo="https://github.com/g/google-calendar-mcp", popularity=0.5,
    )
    s["drive"] = make_server(
        "Google Drive", "Search and read files in Google Drive.", repo="https://github.com/g/gdrive-mcp", popularity=0.5,
    )
    s["aws"] = make_server(
        "AWS", "Manage Amazon Web Services resources: S3 buckets, EC2 instances, Lambda functions.",
        repo="https://github.com/awslabs/mcp", official=True, popularity=0.7,
    )
    s["create"] = make_server(
        "mcp-create", "A tool that creates new MCP servers from a template.", repo="https://github.com/c/mcp-create",
        popularity=0.2,
    )
    s["memory"] = make_server(
        "Memory", "A knowledge graph memory that remembers facts about the user across chats.",
        repo="https://github.com/modelcontextprotocol/memory", popularity=0.6,
    )
    return s


@pytest.fixture
def catalogue(db) -> dict[str, McpServer]:
    servers = build_catalogue()
    assert refresh_search_fields() == len(servers)
    server_embeddings_refresh(provider=get_provider(), use_cache=False)
    return servers


def slugs(query: str, limit: int = 10, **kwargs) -> list[str]:
    return [hit.server.slug for hit in server_search(query=query, limit=limit, **kwargs)]


# ---------------------------------------------------------------------------------------------------------------
# Index fields


def test_refresh_search_fields_builds_document_hash_and_weighted_vector(db):
    server = make_server(
        "Slack MCP Server", "Post messages to channels.", slug="slack-x", repo="https://github.com/slackapi/slack-mcp",
        tools=[("slack_post_message", "Post a message"), ("listChannels", "List channels")],
        credentials=["SLACK_BOT_TOKEN"], categories=["communication"],
    )
    assert refresh_search_fields(server_ids=[server.id]) == 1
    server.refresh_from_db()
    assert server.search_document.startswith("Slack MCP Server\nPost messages to channels.")
    assert "Tools: list channels, slack post message" in server.search_document
    assert server.search_document.endswith("Categories: communication")
    assert len(server.content_hash) == 64
    vector = str(server.search_vector)
    assert "'slack':" in vector and "A" in vector.split("'slack':")[1].split(" ")[0]  # the name weighs most
    assert "'slackapi':" in vector  # repository owner, weight A
    assert "'bot':" in vector  # credential key words, weight D
    # idempotent: same document, same hash
    before = server.content_hash
    refresh_search_fields(server_ids=[server.id])
    server.refresh_from_db()
    assert server.content_hash == before
    assert refresh_search_fields(server_ids=[]) == 0


def test_refresh_search_fields_survives_pathological_records(db):
    server = make_server("Huge", "word " * 2_000_000, slug="huge")  # a 10 MB description
    ServerTool.objects.bulk_create(ServerTool(server=server, name=f"tool_{i}", description="x" * 5000) for i in range(400))
    assert refresh_search_fields(server_ids=[server.id]) == 1
    server.refresh_from_db()
    assert len(server.search_document) <= 12000 and server.search_vector is not None


def test_build_document_puts_names_before_long_text():
    doc = build_document(name="X", description="desc", categories=["developer-tools"],
                         tools=[("getWeather", "long description " * 50), ("get_weather", "")])
    assert doc == "X\ndesc\nTools: get weather\nCategories: developer tools"


# ---------------------------------------------------------------------------------------------------------------
# Embeddings: stale detection, cache, HNSW index, provider switch


def test_stale_detection_and_partial_reembedding(catalogue):
    provider = get_provider()
    assert stale_server_ids(model=provider.name) == []
    assert ServerEmbedding.objects.filter(model=provider.name).count() == len(catalogue)

    notion = catalogue["notion"]
    notion.description = "Notion: manage your pages, databases and comments."
    notion.save()
    new = make_server("Brand New", "A brand new server.", slug="brand-new")
    refresh_search_fields(server_ids=[notion.id, new.id])
    assert set(stale_server_ids(model=provider.name)) == {notion.id, new.id}

    result = server_embeddings_refresh(provider=provider, use_cache=False)
    assert (result.considered, result.computed, result.from_cache) == (2, 2, 0)
    assert stale_server_ids(model=provider.name) == []
    stored = ServerEmbedding.objects.get(server=notion, model=provider.name)
    notion.refresh_from_db()
    assert stored.content_hash == notion.content_hash and stored.dims == 384


def test_servers_never_indexed_are_indexed_before_embedding(db):
    server = McpServer.objects.create(slug="raw", name="Raw Server", description="Imported without indexing.")
    result = server_embeddings_refresh(provider=get_provider(), use_cache=False)
    server.refresh_from_db()
    assert result.computed == 1 and server.content_hash and server.search_vector is not None


def test_embedding_cache_roundtrip(catalogue, settings, tmp_path):
    settings.EMBEDDING_CACHE_DIR = tmp_path
    provider = get_provider()
    path, count = cache_export(model=provider.name)
    assert path.parent == tmp_path and count == len(catalogue)
    cached = cache_load(provider.name, provider.dims)
    originals = {
        e.content_hash: np.array(e.embedding, dtype=np.float32) for e in ServerEmbedding.objects.filter(model=provider.name)
    }
    assert set(cached) == set(originals)
    for digest, vector in originals.items():
        assert float(cached[digest] @ vector) > 0.9999  # float16 storage keeps the direction

    ServerEmbedding.objects.all().delete()
    result = server_embeddings_refresh(provider=provider)
    assert (result.computed, result.from_cache) == (0, len(catalogue))
    assert cache_load("another-model", 384) == {}
    (tmp_path / path.name).write_bytes(b"not a zip file")
    assert cache_load(provider.name, provider.dims) == {}  # unreadable cache: ignored, vectors get computed


def test_hnsw_index_exists_and_search_query_uses_it(catalogue):
    provider = get_provider()
    name = embedding_index_name(provider.name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        (definition,) = cursor.fetchone()
    assert "USING hnsw" in definition and "vector_cosine_ops" in definition
    assert f"WHERE ((model)::text = '{provider.name}'::text)" in definition

    vector = provider.embed(["send a slack message"])[0]
    with transaction.atomic(), connection.cursor() as cursor:
        # 35 rows: the planner would rightly scan them; forbid that to prove the query's expression matches the index.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"EXPLAIN SELECT e.server_id FROM registry_app_serverembedding e WHERE e.model = %s"
            f" ORDER BY {embedding_expression(provider.dims, alias='e')} <=> %s::{vector_type(provider.dims)} LIMIT 10",
            [provider.name, vector_literal(vector)],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan using {name}" in plan


def test_switching_provider_needs_no_schema_change(catalogue, settings):
    minilm_rows = ServerEmbedding.objects.count()
    with FakeOpenAI() as fake:
        settings.EMBEDDING_PROVIDER = "openai"
        settings.OPENAI_API_KEY = "sk-test"
        settings.OPENAI_BASE_URL = fake.base_url
        settings.EMBEDDING_MODEL = "text-embedding-3-small"
        settings.EMBEDDING_DIMS = 0
        out = StringIO()
        call_command("embed_servers", "--stale", stdout=out, stderr=StringIO())
        assert f"{len(catalogue)} servers embedded" in out.getvalue()
        assert ServerEmbedding.objects.filter(model="openai/text-embedding-3-small", dims=1536).count() == len(catalogue)
        assert ServerEmbedding.objects.count() == minilm_rows + len(catalogue)  # both models side by side
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'registry_emb_hnsw_%%'")
            assert cursor.fetchone()[0] >= 2
        hits = server_search(query="post a message to a slack channel")
        assert hits and "slack" in hits[0].server.slug and hits[0].dense_rank is not None
        assert fake.requests  # the query was embedded by the fake API


def test_embed_servers_command(catalogue):
    out = StringIO()
    call_command("embed_servers", stdout=out, stderr=StringIO())
    assert "0 servers embedded" in out.getvalue()
    out = StringIO()
    call_command("embed_servers", "--all", "--batch", "7", "--no-cache", stdout=out, stderr=StringIO())
    assert f"{len(catalogue)} servers embedded (0 from the cache, {len(catalogue)} computed)" in out.getvalue()
    with pytest.raises(CommandError, match="--batch"):
        call_command("embed_servers", "--batch", "0")


# ---------------------------------------------------------------------------------------------------------------
# Tool embeddings: one vector per tool, stale detection, cache, HNSW index, tool-level matching in the ranking


def _tool_vector(tool: ServerTool, model: str) -> np.ndarray:
    return np.array(ToolEmbedding.objects.get(tool=tool, model=model).embedding, dtype=np.float32)


def test_every_tool_gets_a_vector_of_its_own_text(catalogue):
    provider = get_provider()
    tools = list(ServerTool.objects.all())
    assert len(tools) > 10
    assert ToolEmbedding.objects.filter(model=provider.name, dims=384).count() == len(tools)
    assert stale_tool_ids(model=provider.name) == []
    tool = ServerTool.objects.get(server=catalogue["slack_official"], name="slack_post_message")
    document = build_tool_document(tool_name=tool.name, description=tool.description)
    assert document == "slack post message: Post a new message to a Slack channel"
    stored = ToolEmbedding.objects.get(tool=tool, model=provider.name)
    assert stored.content_hash == document_hash(document)
    assert float(_tool_vector(tool, provider.name) @ provider.embed([document])[0]) > 0.9999


def test_staff_tool_edits_make_the_tool_vector_stale_and_embed_servers_refreshes_it(catalogue):
    provider = get_provider()
    server = catalogue["github"]
    tool = ServerTool.objects.get(server=server, name="create_pull_request")
    other_tools = set(ServerTool.objects.exclude(pk=tool.pk).values_list("pk", flat=True))
    before = _tool_vector(tool, provider.name)
    tool.description = "Archive a repository so that it becomes read-only."
    server_children_save(server=server, user=None, relation="tools", changed=[(tool, ["description"])])
    assert stale_tool_ids(model=provider.name) == [tool.pk]
    assert stale_server_ids(model=provider.name) == []  # the server's document names tools, not their descriptions
    added = ServerTool(name="fork_repository", description="Fork a repository into your account.")
    server_children_save(server=server, user=None, relation="tools", created=[added])
    assert stale_tool_ids(model=provider.name) == [tool.pk, added.pk]

    out = StringIO()
    call_command("embed_servers", "--stale", stdout=out, stderr=StringIO())
    assert "2 tools embedded (0 from the cache, 2 computed)" in out.getvalue()
    assert stale_tool_ids(model=provider.name) == []
    after = _tool_vector(tool, provider.name)
    expected = provider.embed(["create pull request: Archive a repository so that it becomes read-only."])[0]
    assert float(after @ expected) > 0.9999 and float(after @ before) < 0.99
    # Other tools were not touched; a deleted tool takes its vector with it.
    assert set(ToolEmbedding.objects.exclude(tool__in=[tool, added]).values_list("tool_id", flat=True)) == other_tools
    server_children_save(server=server, user=None, relation="tools", deleted=[added])
    assert not ToolEmbedding.objects.filter(tool_id=added.pk).exists()


def test_embed_servers_command_computes_exports_and_reuses_tool_vectors(catalogue, settings, tmp_path):
    settings.EMBEDDING_CACHE_DIR = tmp_path
    provider = get_provider()
    tools = ServerTool.objects.count()
    distinct = len({build_tool_document(tool_name=n, description=d)
                    for n, d in ServerTool.objects.values_list("name", "description")})
    out = StringIO()
    call_command("embed_servers", "--all", "--no-cache", "--export-cache", stdout=out, stderr=StringIO())
    assert f"{tools} tools embedded (0 from the cache, {tools} computed)" in out.getvalue()
    assert f"wrote {distinct} tool vectors to {cache_path(provider.name, TOOLS)}" in out.getvalue()
    cached = cache_load(provider.name, provider.dims, TOOLS)
    assert len(cached) == distinct
    assert cache_load(provider.name, provider.dims) != {} and set(cached).isdisjoint(cache_load(provider.name, 384))

    originals = {row.content_hash: np.array(row.embedding, dtype=np.float32) for row in ToolEmbedding.objects.all()}
    ToolEmbedding.objects.all().delete()
    out = StringIO()
    call_command("embed_servers", "--stale", stdout=out, stderr=StringIO())
    assert "0 servers embedded" in out.getvalue()
    assert f"{tools} tools embedded ({tools} from the cache, 0 computed)" in out.getvalue()
    for row in ToolEmbedding.objects.all():
        assert float(np.array(row.embedding, dtype=np.float32) @ originals[row.content_hash]) > 0.9999

    # A cache file of the other kind, or of another model, is not used.
    cache_path(provider.name, TOOLS).write_bytes(cache_path(provider.name).read_bytes())
    assert cache_load(provider.name, provider.dims, TOOLS) == {}
    assert tool_cache_export(model="another-model") == (cache_path("another-model", TOOLS), 0)


def test_tool_vectors_have_their_own_hnsw_index_per_model(catalogue, settings):
    provider = get_provider()
    name = embedding_index_name(provider.name, TOOLS)
    assert name != embedding_index_name(provider.name) and len(name) <= 63
    vector = provider.embed(["post a message"])[0]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        (definition,) = cursor.fetchone()
        assert "registry_app_toolembedding USING hnsw" in definition
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"EXPLAIN SELECT tool_id FROM registry_app_toolembedding te WHERE te.model = %s"
            f" ORDER BY {embedding_expression(provider.dims, alias='te')} <=> %s::{vector_type(provider.dims)} LIMIT 5",
            [provider.name, vector_literal(vector)],
        )
        assert f"Index Scan using {name}" in "\n".join(row[0] for row in cursor.fetchall())

    with FakeOpenAI():  # a new provider: its tool vectors and index sit beside MiniLM's, no migration
        settings.EMBEDDING_PROVIDER = "openai"
        settings.OPENAI_API_KEY = "sk-test"
        with FakeOpenAI() as fake:
            settings.OPENAI_BASE_URL = fake.base_url
            settings.EMBEDDING_MODEL = "text-embedding-3-small"
            settings.EMBEDDING_DIMS = 0
            call_command("embed_servers", "--stale", stdout=StringIO(), stderr=StringIO())
    tools = ServerTool.objects.count()
    assert ToolEmbedding.objects.filter(model="openai/text-embedding-3-small", dims=1536).count() == tools
    assert ToolEmbedding.objects.filter(model=provider.name).count() == tools
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'registry_toolemb_hnsw_%%'")
        assert cursor.fetchone()[0] >= 2


OFFICE_TOOLS = [
    ("create_document", "Create a new word processing document"), ("open_document", "Open an existing document"),
    ("save_document", "Save the document"), ("add_paragraph", "Add a paragraph of text"),
    ("add_heading", "Add a heading"), ("add_table", "Insert a table"), ("format_table_cell", "Format a table cell"),
    ("insert_page_break", "Insert a page break"), ("add_footnote", "Add a footnote"),
    ("create_spreadsheet", "Create a new spreadsheet workbook"), ("write_cells", "Write values into cells"),
    ("read_cells", "Read values from cells"), ("add_formula", "Add a formula to a cell"),
    ("create_pivot_table", "Create a pivot table"), ("add_chart_to_sheet", "Add a chart to a worksheet"),
    ("create_presentation", "Create a new slide deck"), ("add_slide", "Add a slide"),
    ("set_slide_layout", "Change the layout of a slide"), ("add_speaker_notes", "Add speaker notes"),
    ("fx_convert", "Convert an amount of money between two currencies at the latest exchange rate."),  # the 20th
    ("export_pdf", "Export the file as PDF"), ("track_changes", "Turn change tracking on or off"),
    ("add_comment", "Add a review comment"), ("protect_document", "Protect the document with a password"),
    ("mail_merge", "Run a mail merge"),
]


def test_a_server_whose_only_match_is_its_20th_tool_ranks_first(catalogue):
    office = make_server(
        "Acme Office Suite",
        "An all-in-one office automation toolkit for word processing documents, spreadsheets and slide presentations: "
        "create, open, edit, format, review and export Word, Excel and PowerPoint files with headings, tables, "
        "footnotes, formulas, pivot tables, charts, layouts, speaker notes, comments and protection. " * 4,
        slug="acme-office", tools=OFFICE_TOOLS,
    )
    refresh_search_fields(server_ids=[office.id])
    provider = get_provider()
    result = server_embeddings_refresh(provider=provider, use_cache=False)
    assert (result.computed, result.tools_computed) == (1, len(OFFICE_TOOLS))
    office.refresh_from_db()
    # The model reads the first 256 tokens of the server's document: the 20th tool is past them.
    document = office.search_document
    cut = provider.embed([document, document[: document.index("fx convert")]])
    assert float(cut[0] @ cut[1]) > 0.9999

    query = "how much is 100 US dollars in Japanese yen"  # no word of the tool's text: dense matching only
    hits = server_search(query=query, limit=5)
    assert hits[0].server.slug == "acme-office" and hits[0].lexical_rank is None, [h.server.slug for h in hits]
    without_tools = [h.server.slug for h in server_search(query=query, limit=5,
                                                           params=replace(DEFAULT_PARAMS, tool_weight=0.0))]
    assert "acme-office" not in without_tools


def test_tool_matching_respects_filters_and_survives_missing_tool_vectors(catalogue):
    ToolEmbedding.objects.filter(tool__server=catalogue["github"]).delete()
    assert slugs("list open issues in my GitHub repository")[0] == "github-mcp-server"  # its document still matches
    assert slugs("send a slack message", category="no-such-category") == []
    assert "slack-pro" not in slugs("send a slack message", limit=30)  # hidden: never found through its tools either
    ToolEmbedding.objects.all().delete()
    assert slugs("send a slack message")[0] == "slack-official"


# ---------------------------------------------------------------------------------------------------------------
# Ranking


def test_official_slack_server_wins_among_slack_servers(catalogue):
    hits = server_search(query="send a slack message", limit=10)
    top = [hit.server.slug for hit in hits]
    assert top[0] == "slack-official"
    assert all("slack" in slug for slug in top[:5])
    assert "slack-pro" not in top and "slack-legacy" not in top  # hidden and deprecated never show
    assert hits[0].name_match == 1.0 and hits[0].score >= hits[1].score
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("read my gmail", "gmail-mcp-server"),
        ("create a notion page", "notion"),
        ("list open issues in my GitHub repository", "github-mcp-server"),
        ("Stripe: refund the last payment", "stripe"),
        ("run a SQL query on my postgres database", "postgresql"),
        ("what's the weather forecast for Lisbon", "openweather"),
        ("what time is it in Tokyo right now", "time"),
        ("post an alert to our discord channel", "discord"),
        ("upload a file to an S3 bucket", "aws"),
    ],
)
def test_named_services_and_paraphrases_rank_first(catalogue, query, expected):
    assert slugs(query)[0] == expected


def test_ordinary_words_that_are_server_names_get_no_name_boost(catalogue):
    hits = server_search(query="create a notion page")
    assert hits[0].server.slug == "notion"
    create = next((h for h in hits if h.server.slug == "mcp-create"), None)
    assert create is None or create.name_match < 1.0


def test_multi_step_request_gets_a_server_for_each_part(catalogue):
    top = slugs("Find the open issues in our GitHub repo, then post a summary to the Slack channel", limit=4)
    assert "github-mcp-server" in top and "slack-official" in top


def test_implied_needs_bring_file_system_and_time(catalogue):
    top = slugs("Summarise https://example.com/news and save it to /tmp/summary.md", limit=4)
    assert "filesystem" in top and "fetch" in top
    assert "time" in slugs("Book the cheapest train for next Friday and remind me", limit=5)


def test_query_clauses_and_implied_needs():
    assert query_clauses("send a slack message") == []
    assert query_clauses("Find trending repos on GitHub. Then post them to Slack, and save a report") == [
        "Find trending repos on GitHub", "post them to Slack", "save a report"
    ]
    assert implied_needs("write it to ~/notes/today.md")[0].startswith("read and write files")
    now = ["get the current date and time; convert between time zones"]
    assert implied_needs("what happened yesterday") == now
    # a time window relative to now, written out or abbreviated
    for text in ("BTC over the past 3 days", "the last 24h of BTC", "errors in the last 2 hrs", "sales of the past 5 years"):
        assert implied_needs(text) == now, text
    assert implied_needs("send a slack message") == []
    assert implied_needs("the last 10 items of the list") == []


def test_category_filter_and_inactive_servers(catalogue):
    assert set(slugs("messages", limit=20, category="communication")) <= {
        "slack-official", "slack-plain", "gmail-mcp-server", "outlook-mail", "discord", "telegram"
    }
    assert slugs("send a slack message", category="no-such-category") == []
    assert "slack-pro" in slugs("slack pro spam", include_inactive=True)


@pytest.mark.parametrize(
    "query",
    [
        "'; DROP TABLE registry_app_mcpserver; --",
        ".*(",
        "&|!:*",
        "slack & | ! <-> :* ( ) ' \"",
        "\\x00 \x00 slack",
        "((((((((((",
        "日本語のメッセージを送る",
        "a" * 4000,
    ],
)
def test_hostile_queries_are_harmless(catalogue, query):
    hits = server_search(query=query, limit=5)
    assert isinstance(hits, list)
    assert McpServer.objects.count() == len(catalogue)


@pytest.mark.parametrize(("query", "code"), [("", "empty_query"), ("   \n\t ", "empty_query"), ("x" * 100_000, "query_too_long")])
def test_bad_queries_are_400(catalogue, query, code):
    with pytest.raises(ApplicationError) as info:
        server_search(query=query)
    assert info.value.status == 400 and info.value.code == code
    if code == "query_too_long":
        assert info.value.details == {"length": 100_000, "max_length": 4000}
        assert "4000" in info.value.message


def test_limit_is_clamped(catalogue):
    assert len(server_search(query="server", limit=1)) == 1
    assert len(server_search(query="slack messages email notes files", limit=500)) <= 100


def test_search_works_without_embeddings(db):
    make_server("Slack", "Send Slack messages.", slug="slack-only")
    refresh_search_fields()
    assert slugs("send a slack message") == ["slack-only"]  # lexical + name match alone


# ---------------------------------------------------------------------------------------------------------------
# search_servers command


def test_search_servers_command_prints_json_best_first(catalogue):
    out = StringIO()
    call_command("search_servers", "send a slack message", "--limit", "3", "--json", stdout=out)
    rows = json.loads(out.getvalue())
    assert [set(row) for row in rows] == [{"slug", "name", "repository_url", "score"}] * 3
    assert rows[0]["slug"] == "slack-official"
    assert rows[0]["repository_url"] == "https://github.com/slackapi/slack-mcp-server"
    assert [r["slug"] for r in rows] == slugs("send a slack message", limit=3)  # same code path as the API
    assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]

    out = StringIO()
    call_command("search_servers", "read my gmail", "--explain", stdout=out)
    assert "gmail-mcp-server" in out.getvalue().splitlines()[0] and "dense #" in out.getvalue()
    with pytest.raises(CommandError, match="empty"):
        call_command("search_servers", "  ")
    with pytest.raises(CommandError, match="--limit"):
        call_command("search_servers", "x", "--limit", "0")


# ---------------------------------------------------------------------------------------------------------------
# The real bundled catalogue (config/servers.json): loaded once, through the shipped embedding cache


@pytest.mark.parametrize(
    ("query", "word"),
    [("send a slack message", "slack"), ("read my gmail", "gmail"), ("create a notion page", "notion")],
)
def test_bundled_catalogue_named_services(bundled_catalogue, query, word):
    hits = server_search(query=query, limit=5)
    assert word in hits[0].server.slug or word in hits[0].server.name.lower()
    named = [h for h in hits if word in h.server.slug or word in h.server.name.lower()]
    assert len(named) >= 4, [h.server.slug for h in hits]


def test_bundled_catalogue_prefers_official_servers(bundled_catalogue):
    top = server_search(query="list issues in my github repository", limit=3)
    assert any(h.server.official and "github" in h.server.repository_url for h in top), [h.server.slug for h in top]


def test_bundled_catalogue_tool_vectors_come_from_the_shipped_cache(bundled_catalogue):
    provider = get_provider()
    tools = ServerTool.objects.count()
    assert tools > 5000
    assert ToolEmbedding.objects.filter(model=provider.name).count() == tools
    cached = cache_load(provider.name, provider.dims, TOOLS)
    covered = sum(
        document_hash(build_tool_document(tool_name=n, description=d)) in cached
        for n, d in ServerTool.objects.values_list("name", "description")
    )
    # `embed_servers --stale --export-cache` after a change of config/servers.json keeps this at 100%
    assert covered >= 0.99 * tools, f"{tools - covered} tools missing from {cache_path(provider.name, TOOLS)}"


def test_bundled_catalogue_uses_the_hnsw_index_unforced(bundled_catalogue):
    provider = get_provider()
    assert McpServer.objects.count() >= 4000
    # The fixture copies the catalogue in without its vector indexes; build the one this test is about.
    ensure_embedding_index(model=provider.name, dims=provider.dims)
    tidy_tables()
    vector = provider.embed(["send a slack message"])[0]
    with connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN SELECT e.server_id FROM registry_app_serverembedding e JOIN registry_app_mcpserver s"
            f" ON s.id = e.server_id WHERE e.model = %s AND s.status = 'active'"
            f" ORDER BY {embedding_expression(provider.dims, alias='e')} <=> %s::{vector_type(provider.dims)} LIMIT 100",
            [provider.name, vector_literal(vector)],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan using {embedding_index_name(provider.name)}" in plan, plan
