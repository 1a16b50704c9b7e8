"""Agents built from catalogue servers (the chat flow): which launch recipe to use, the mcpServers entries made of
it with references to the credentials and files collected in the session, and the agent created from them."""

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from agents_app import mcp_config, safety
from agents_app.master.requirements import counts_as_required
from agents_app.models import Agent
from agents_app.oauth_rules import oauth_connected_keys
from agents_app.secrets import secrets_adopt
from agents_app.services.creation import agent_create
from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient
from mcpagent.vault.files import files_collected
from mcpagent.vault.store import credentials_collected
from registry_app.models import CredentialRequirement, McpServer


@dataclass
class CatalogueServers:
    """What agent_create needs for catalogue servers: the mcpServers entries (references only), the catalogue's
    literal defaults and slug per server name, and the servers described for the instruction."""

    servers: dict[str, dict]
    defaults: dict[str, dict[str, str]]
    slugs: dict[str, str]
    described: list[dict]

    def credential_keys(self) -> dict[str, tuple[str, list[str], list[str]]]:
        """{server name: (slug, value keys, file keys)}: what the servers would be started with."""
        return {name: (self.slugs[name], mcp_config.value_keys(entry), mcp_config.file_keys(entry))
                for name, entry in self.servers.items()}


def catalogue_servers(*, session: Any, server_slugs: list[str]) -> CatalogueServers:
    """The agent configuration for catalogue servers. Launch recipes come from the catalogue, never from the
    user; env/header values and credential arguments are references to the credentials collected in `session`
    for each server, and files uploaded for a file requirement are file references (only keys that were
    collected; the credentials service resolves them, and writes the files, at start time)."""
    if not server_slugs:
        raise ApplicationError("No MCP servers were chosen for the agent.", code="invalid_input",
                               details={"field": "server_slugs"})
    collected = credentials_collected(session=session) if session is not None else {}
    collected_files = files_collected(session=session) if session is not None else set()
    location = CredentialRequirement.Location
    found = {s.slug: s for s in McpServer.objects.filter(slug__in=server_slugs).prefetch_related("launch_recipes")}
    result = CatalogueServers(servers={}, defaults={}, slugs={}, described=[])
    for slug in server_slugs:
        server = found.get(slug)
        if server is None:
            raise ApplicationError(f"The catalogue has no server '{slug}'.", code="unknown_server", status=404,
                                   details={"server": slug})
        keys = set(collected.get(slug, set()))
        oauth_keys, oauth_files = (oauth_connected_keys(client=session.client, end_user=session.end_user, server=slug)
                                   if session is not None else ([], []))
        keys |= set(oauth_keys)  # supplied by the end user's OAuth connection at each start
        env_keys, header_keys, arg_keys, file_keys, omit_keys = [], [], [], [], []
        arg_defaults: dict[str, str] = {}
        for req in CredentialRequirement.objects.filter(server=server).order_by("key"):
            is_file = req.location == location.FILE or req.kind == CredentialRequirement.Kind.FILE_PATH
            if req.key in oauth_files or (is_file and (req.key in collected_files
                                                         or f"{slug}:{req.key}" in collected_files)):
                file_keys.append(req.key)  # uploaded (vault files): the server gets its path
            elif req.key in keys and req.location != location.FILE:
                {location.HEADER: header_keys, location.ARG: arg_keys}.get(req.location, env_keys).append(req.key)
            elif req.location == location.ARG and req.default:
                arg_defaults[req.key] = req.default
            elif not counts_as_required(required=req.required, secret=req.secret, default=req.default, key=req.key):
                omit_keys.append(req.key)
        recipe = pick_recipe(list(server.launch_recipes.all()))
        if recipe is None:
            raise ApplicationError(f"The catalogue does not say how to start {server.name}.", code="recipe_unusable",
                                   details={"server": slug})
        server_name = server_name_for(slug, taken=result.servers)
        entry = mcp_config.entry_from_recipe(recipe, env_keys=env_keys, header_keys=header_keys, arg_keys=arg_keys,
                                             file_keys=file_keys, arg_defaults=arg_defaults, omit_keys=omit_keys)
        if "defaults" in entry:
            result.defaults[server_name] = entry.pop("defaults")
        result.servers[server_name] = entry
        result.slugs[server_name] = slug
        result.described.append({"name": server.name, "slug": slug, "description": server.description[:500]})
    return result


def agent_create_for_catalogue_servers(*, client: ApiClient, session: Any, server_slugs: list[str], user_prompt: str,
                                       workflow: Any, model: str | None = None, server_info: dict | None = None,
                                       name: str = "", actor: Any = None) -> Agent:
    """Create an agent for catalogue servers (the chat flow), configured by catalogue_servers, holding the
    credentials and files collected in `session`."""
    chosen = catalogue_servers(session=session, server_slugs=server_slugs)
    info = server_info if isinstance(server_info, dict) and server_info.get("servers") else {"servers": chosen.described}
    with transaction.atomic():
        agent = agent_create(client=client, session=session, servers=chosen.servers, server_info=info,
                             user_prompt=user_prompt, workflow=workflow, model=model, name=name,
                             catalogue_slugs=chosen.slugs, catalogue_defaults=chosen.defaults, actor=actor)
        secrets_adopt(agent=agent, actor=actor or client)
    return agent


def agent_stored_credential_keys(agent: Agent) -> dict[str, tuple[str, list[str], list[str]]]:
    """CatalogueServers.credential_keys of a stored agent (a server without a catalogue slug has slug "")."""
    return {name: (entry.get("catalogue", ""), mcp_config.value_keys(entry), mcp_config.file_keys(entry))
            for name, entry in agent.mcp_config.get("mcpServers", {}).items()}


def pick_recipe(recipes: list[Any]) -> Any:
    """The preferred recipe whose launcher is allowed here, installed ones first (a remote needs none)."""
    def launcher(recipe: Any) -> str | None:
        return None if recipe.kind == "remote" else mcp_config.RECIPE_LAUNCHERS.get(recipe.kind, recipe.command or "")

    usable = [r for r in sorted(recipes, key=lambda r: (r.priority, r.id))
              if (r.kind == "remote" and r.url) or (launcher(r) and launcher(r) in safety.allowed_commands())]
    installed = [r for r in usable if r.kind == "remote" or safety.resolve_command(launcher(r))]
    return (installed or usable or [None])[0]


def server_name_for(slug: str, *, taken: dict) -> str:
    base = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_-]+", "-", slug.rsplit("/", 1)[-1])).strip("-_")[:56] or "server"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name
