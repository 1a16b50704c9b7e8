"""The catalogue as a stdio MCP server: the tools the workflow_analyzer agent (agents_app.master.llm) searches with.

    python -m agents_app.master.catalogue_mcp

Started by the analyzer with DJANGO_SETTINGS_MODULE and the database settings in its environment (see
`child_env`), so it reads the same catalogue as the process that started it (the test database in tests).
"""

import os
import sys
from urllib.parse import quote

import django
from django.conf import settings
from django.db import connection
from mcp.server.mcpserver import MCPServer

# The tools import the catalogue's models, and every module that loads models, inside their bodies: run as
# `python -m`, this module is loaded before main() sets Django up, when no model can be imported yet.

SERVER_NAME = "catalogue"
DESCRIPTION_CHARS = 300
TOOL_DESCRIPTION_CHARS = 200
MAX_TOOLS_LISTED = 40
MAX_LIMIT = 25

# Settings the child's search needs, passed through from this process's settings (not its environment, so a
# test's `settings` overrides apply). A subprocess started by fast-agent gets only HOME/PATH/... plus these.
_PASSED_SETTINGS = (
    "EMBEDDING_PROVIDER", "EMBEDDING_MODEL", "EMBEDDING_DIMS", "EMBEDDING_THREADS", "EMBEDDING_CACHE_DIR",
    "SEARCH_HNSW_EF_SEARCH", "SEARCH_MAX_QUERY_CHARS",
    "OPENAI_API_KEY", "OPENAI_BASE_URL",  # only used when EMBEDDING_PROVIDER=openai
)


def child_env() -> dict[str, str]:
    """Environment for the server process: the settings module and the database this process is connected to."""
    db = connection.settings_dict
    env = {
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "mcpagent.settings"),
        "PYTHONPATH": str(settings.BASE_DIR),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",  # stderr only; stdout carries the MCP protocol
        "MCPAGENT_DATA_DIR": str(settings.DATA_DIR),
        "DB_CONN_MAX_AGE": "0",
    }
    if settings.DATABASE_URL:
        # Rebuilt from the live connection so that a test database (a different NAME) is followed too.
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or ""
        netloc = f"{auth}@" if auth else ""
        netloc += quote(host, safe="") if host.startswith("/") else host
        if db.get("PORT"):
            netloc += f":{db['PORT']}"
        env["DATABASE_URL"] = f"postgres://{netloc}/{quote(db['NAME'], safe='')}"
    else:
        env["MCPAGENT_DB_NAME"] = db["NAME"]
        env["MCPAGENT_DB_PASSWORD"] = db["PASSWORD"]  # it may have come from the environment, now emptied of it
    for name in _PASSED_SETTINGS:
        value = getattr(settings, name, None)
        if value not in (None, ""):
            env[name] = str(value)
    return env


def _short(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _required_keys(server) -> list[str]:
    from agents_app.master.requirements import _is_required  # the one rule for "required" (secret, no default)

    return [c.key for c in server.credentials.all() if _is_required(c)]


def search_servers(query: str, limit: int = 8) -> dict:
    """Catalogue servers for a need, best first: slug, name, description, repository, score, tool names, the
    keys of the credentials they require, and whether they can be started here (agents_app.master.launchability)."""
    from agents_app.master.launchability import assess
    from registry_app.models import McpServer
    from registry_app.selectors import server_search

    limit = max(1, min(int(limit), MAX_LIMIT))
    hits = server_search(query=query, limit=limit)
    ids = [hit.server.pk for hit in hits]
    servers = McpServer.objects.prefetch_related("tools", "credentials", "launch_recipes").in_bulk(ids)
    results = []
    for hit in hits:
        server = servers.get(hit.server.pk)
        if server is None or server.status != McpServer.Status.ACTIVE:
            continue
        tools = [t.name for t in server.tools.all()]
        launch = assess({r.kind for r in server.launch_recipes.all()},
                        [{"key": c.key, "location": c.location, "description": c.description, "instructions": c.instructions,
                          "required": c.required, "secret": c.secret, "default": c.default}
                         for c in server.credentials.all()])
        results.append({
            "slug": server.slug,
            "name": server.name,
            "description": _short(server.description, DESCRIPTION_CHARS),
            "repository_url": server.repository_url,
            "score": round(float(hit.score), 4),
            "official": server.official,
            "verified": server.verified,
            "tools": tools[:MAX_TOOLS_LISTED],
            "tools_known": bool(tools),
            "required_credentials": _required_keys(server),
            "runnable_here": launch.runnable_here,
            **({} if launch.runnable_here else {"not_runnable_because": launch.blocker}),
        })
    return {"query": query, "results": results}


def get_server(slug: str) -> dict:
    """One catalogue server in full: description, tools (name + description) and credential requirements."""
    from agents_app.master.requirements import _is_required
    from mcpagent.errors import ApplicationError
    from registry_app.selectors import server_get

    try:
        server = server_get(slug=slug.strip())
    except ApplicationError:
        server = None
    # The detail API shows deprecated servers to people; the analyzer must only ever plan with active ones.
    if server is None or server.status != server.Status.ACTIVE:
        raise ValueError(f"No active catalogue server has the slug {slug!r}; use a slug from search_servers.")
    return {
        "slug": server.slug,
        "name": server.name,
        "description": _short(server.description, 2000),
        "repository_url": server.repository_url,
        "homepage": server.homepage,
        "categories": list(server.categories),
        "official": server.official,
        "verified": server.verified,
        "tools": [{"name": t.name, "description": _short(t.description, TOOL_DESCRIPTION_CHARS)}
                  for t in server.tools.all()[:MAX_TOOLS_LISTED * 2]],
        "credentials": [
            {"key": c.key, "required": _is_required(c), "secret": c.secret, "kind": c.kind,
             "description": _short(c.description, TOOL_DESCRIPTION_CHARS)}
            for c in server.credentials.all()
        ],
    }


def build_server():
    server = MCPServer(
        SERVER_NAME,
        instructions="Search the MCP server catalogue (search_servers) and read one server's tools and "
                     "credentials (get_server).",
    )
    server.tool(name="search_servers", description=(
        "Search the MCP server catalogue for servers that serve a need (a service such as 'gmail' or a "
        "capability such as 'web search'). Returns the best matches with slug, name, description, repository, "
        "score, tool names, required credential keys and whether it can be started here (runnable_here). Call it "
        "once per need."
    ))(search_servers)
    server.tool(name="get_server", description=(
        "Details of one catalogue server by slug: its tools with descriptions and its credential requirements."
    ))(get_server)
    return server


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")
    django.setup()
    build_server().run("stdio")


if __name__ == "__main__":
    sys.exit(main())
