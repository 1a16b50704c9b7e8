"""What an agent's servers are started with: each server's launch spec with its credentials resolved in memory
and its stored files written for exactly one start (validation and runs both start servers this way)."""

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from agents_app import mcp_config
from agents_app.models import Agent
from agents_app.secrets import credential_scope, remote_token_apply, secrets_files_for_use, secrets_for_use
from mcpagent.errors import ApplicationError
from registry_app.models import LaunchRecipe, McpServer


def launch_specs(agent: Agent, *, reason: str, actor: Any = None, files: dict[str, dict[str, str]] | None = None,
                 only: set[str] | None = None) -> list[mcp_config.LaunchSpec]:
    """Each server of the agent (or those named in `only`) with its credentials resolved (in memory only, for one
    start). `files`: {server name: {key: path}} of the files materialized for this start (see agent_launch)."""
    labels = {}
    for item in agent.server_info.get("servers", []) if isinstance(agent.server_info, dict) else []:
        if isinstance(item, dict) and item.get("name"):
            labels[str(item.get("slug") or item["name"])] = str(item["name"])
    slugs = [e["catalogue"] for e in agent.mcp_config.get("mcpServers", {}).values() if e.get("catalogue")]
    egress = dict(McpServer.objects.filter(slug__in=slugs).values_list("slug", "egress_hosts")) if slugs else {}
    proxied = _proxied_recipes(slugs)
    specs = []
    for server_name, entry in agent.mcp_config.get("mcpServers", {}).items():
        if only is not None and server_name not in only:
            continue
        values = (secrets_for_use(agent=agent, scope=credential_scope(server_name, entry), actor=actor or agent.client,
                                  reason=reason) if mcp_config.value_keys(entry) else {})
        label = labels.get(entry.get("catalogue", "")) or labels.get(server_name) or server_name
        spec = mcp_config.launch_spec(name=server_name, entry=entry, values=values,
                                      files=(files or {}).get(server_name), label=label)
        spec.egress_hosts = egress.get(entry.get("catalogue", ""), [])
        spec.proxy_env = _proxy_env(entry, proxied.get(entry.get("catalogue", ""), []))
        remote_token_apply(agent=agent, spec=spec, actor=actor or agent.client, reason=reason)
        specs.append(spec)
    return specs


def _proxied_recipes(slugs: list[str]) -> dict[str, list[tuple[str, str, list[str]]]]:
    """{slug: [(launcher, package, proxy variables)]} of the catalogue recipes that name proxy variables."""
    found: dict[str, list[tuple[str, str, list[str]]]] = {}
    rows = (LaunchRecipe.objects.filter(server__slug__in=slugs).exclude(proxy_env=[])
            .values_list("server__slug", "kind", "command", "identifier", "proxy_env")) if slugs else []
    for slug, kind, command, identifier, names in rows:
        launcher = command or mcp_config.RECIPE_LAUNCHERS.get(kind, "")
        found.setdefault(slug, []).append((launcher, identifier, [n for n in names if isinstance(n, str)]))
    return found


def _proxy_env(entry: dict, recipes: list[tuple[str, str, list[str]]]) -> list[str]:
    """The proxy variables of the recipe `entry` was made from: same launcher, its package among the arguments
    (maybe with a version: `pkg@1.2`, `pkg==1.2`, `image:tag`). Looked up at each start, so agents made before the
    catalogue named them get them too."""
    args = [a for a in entry.get("args") or [] if isinstance(a, str)]
    names: list[str] = []
    for launcher, package, proxy_env in recipes:
        named = not package or any(re.fullmatch(re.escape(package) + r"([@=:\[].*)?", arg) for arg in args)
        if launcher == entry.get("command") and named:
            names += [n for n in proxy_env if n not in names]
    return names


def launch_error(exc: ApplicationError) -> dict:
    """An agent's or run's stored error for a server that could not be prepared (a credential missing, ...)."""
    details = exc.details or {}
    return {"server": details.get("server"), "code": exc.code, "message": exc.message, "hint": details.get("hint", "")}


@contextmanager
def agent_launch(agent: Agent, *, reason: str, actor: Any = None,
                 only: set[str] | None = None) -> Iterator[list[mcp_config.LaunchSpec]]:
    """launch_specs with the servers' stored files written (decrypted) into private folders for exactly the
    block: start, use and stop the servers inside it. The files are removed when it ends, also on error or
    timeout. A missing credential or file raises ApplicationError 409 credential_missing on entry."""
    with ExitStack() as stack:
        files: dict[str, dict[str, str]] = {}
        for server_name, entry in agent.mcp_config.get("mcpServers", {}).items():
            keys = mcp_config.file_keys(entry)
            if keys and (only is None or server_name in only):
                files[server_name] = stack.enter_context(secrets_files_for_use(
                    agent=agent, server_name=server_name, scope=credential_scope(server_name, entry), keys=keys,
                    actor=actor or agent.client, reason=reason,
                ))
        yield launch_specs(agent, reason=reason, actor=actor, files=files, only=only)
