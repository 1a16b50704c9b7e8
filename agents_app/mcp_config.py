"""MCP server entries: built from catalogue launch recipes, stored with secret references, resolved for a
start, and exported as a fast-agent project.

A stored entry (Agent.mcp_config["mcpServers"][name]) never holds a secret value: every env value and
header value is a reference `{"$credential": "<key>"}` resolved through agents_app.secrets at start time.
"""

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from mcpagent.errors import ApplicationError

REFERENCE = "$credential"


def reference(key: str, template: str | None = None) -> dict[str, str]:
    """A stored stand-in for a credential value; `template` ("Bearer ${KEY}") wraps it (catalogue headers)."""
    return {REFERENCE: key, "template": template} if template else {REFERENCE: key}


def is_reference(value: Any) -> bool:
    return (isinstance(value, dict) and REFERENCE in value and set(value) <= {REFERENCE, "template"}
            and isinstance(value[REFERENCE], str))


def split_secrets(entry: dict) -> tuple[dict, dict[str, str]]:
    """(entry with every env/header value replaced by a reference, {key: value} to store as credentials).
    All values are treated as secrets: a user config does not say which ones are, and a wrongly named
    token must not end up in plain text."""
    stored = dict(entry)
    values: dict[str, str] = {}
    for section in ("env", "headers"):
        if section not in entry:
            continue
        stored[section] = {}
        for key, value in entry[section].items():
            if is_reference(value):
                stored[section][key] = value
            else:
                values[key] = value
                stored[section][key] = reference(key)
    return stored, values


def secret_keys(entry: dict) -> list[str]:
    return [key for section in ("env", "headers") for key in entry.get(section, {})]


@dataclass
class LaunchSpec:
    """One server ready to start: references resolved. Lives only in memory for one validation or run."""

    name: str
    label: str
    transport: str
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def secret_keys(self) -> list[str]:
        return [*self.env, *self.headers]

    @property
    def secret_values(self) -> list[str]:
        return [v for v in (*self.env.values(), *self.headers.values()) if len(v) >= 4]

    def redact(self, text: str) -> str:
        """Remove this server's secret values from text (stderr, exception messages) before anyone sees it."""
        for value in sorted(self.secret_values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


def launch_spec(*, name: str, entry: dict, values: dict[str, str], label: str = "") -> LaunchSpec:
    """Resolve an entry's references with `values` ({key: value} from the credentials service)."""

    def resolve(section: str) -> dict[str, str]:
        resolved = {}
        for key, value in entry.get(section, {}).items():
            if is_reference(value):
                ref = value[REFERENCE]
                if ref not in values:
                    raise ApplicationError(
                        f"MCP server '{name}' needs the credential {ref}, which is not stored (or has expired).",
                        code="credential_missing", status=409,
                        details={"server": name, "credential": ref, "hint": "Provide it again and retry."},
                    )
                template = value.get("template")
                resolved[key] = template.replace("${%s}" % ref, values[ref]) if template else values[ref]
            else:
                resolved[key] = value
        return resolved

    return LaunchSpec(
        name=name, label=label or name, transport=entry.get("transport", "stdio"),
        command=entry.get("command", ""), args=list(entry.get("args", [])),
        env={**entry.get("defaults", {}), **resolve("env")},
        url=entry.get("url", ""), headers=resolve("headers"),
    )


def public_entry(entry: dict) -> dict:
    """An entry for API responses: references shown as "set", never values."""
    shown = {k: v for k, v in entry.items() if k in ("transport", "command", "args", "url", "catalogue", "defaults")}
    for section in ("env", "headers"):
        if section in entry:
            shown[section] = {key: "set" for key in entry[section]}
    return shown


# --- Catalogue launch recipes -> entries (the user never supplies these for catalogue servers). ---

def entry_from_recipe(recipe: Any, *, env_keys: list[str], header_keys: list[str]) -> dict:
    """An mcpServers entry for a registry_app.LaunchRecipe. The recipe carries its full argv (command + args)
    and env/header templates where "${KEY}" stands for the server's credential KEY. Values become references
    to the credential keys collected for the server; the recipe's literal, non-secret settings (e.g.
    IMAP_HOST=imap.gmail.com) go to "defaults", which the user's own values override."""
    collected = set(env_keys) | set(header_keys)

    def templated(section: dict) -> tuple[dict, dict]:
        refs, literals = {}, {}
        for key, value in (section or {}).items():
            names = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", str(value))
            if not names:
                literals[key] = str(value)
            elif names[0] in collected:
                refs[key] = reference(names[0]) if value == "${%s}" % names[0] else reference(names[0], str(value))
        return refs, literals

    kind = recipe.kind
    if kind == "remote":
        if not recipe.url:
            raise ApplicationError(f"The catalogue has no URL for {recipe.server}.", code="recipe_unusable")
        transport = "sse" if recipe.transport == "sse" else "http"
        header_refs, _ = templated(getattr(recipe, "headers", {}))
        headers = {k: reference(k) for k in header_keys if k not in header_refs}
        return {"transport": transport, "url": recipe.url, "headers": {**headers, **header_refs}}
    env_refs, defaults = templated(getattr(recipe, "env", {}))
    env = {**{k: reference(k) for k in env_keys}, **env_refs}
    defaults = {k: v for k, v in defaults.items() if k not in env}
    recipe_args = [a for a in (recipe.args or []) if isinstance(a, str)]
    if recipe.command:  # imported recipes carry their whole argv
        command, args = recipe.command, recipe_args
    elif kind == "npm":  # otherwise args are extra arguments after the package
        command, args = "npx", ["-y", f"{recipe.identifier}@{recipe.version}" if recipe.version else recipe.identifier,
                                *recipe_args]
    elif kind == "pypi":
        command, args = "uvx", [f"{recipe.identifier}=={recipe.version}" if recipe.version else recipe.identifier,
                                *recipe_args]
    elif kind == "oci":
        image = recipe.identifier
        if recipe.version and ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            image = f"{image}:{recipe.version}"
        command, args = "docker", ["run", "-i", "--rm", *[f for key in env_keys for f in ("-e", key)], image,
                                   *recipe_args]
    else:
        raise ApplicationError(
            f"The catalogue has no way to start {recipe.server} ({kind} {recipe.identifier}).", code="recipe_unusable"
        )
    entry = {"transport": "stdio", "command": command, "args": args, "env": env}
    if defaults:
        entry["defaults"] = defaults
    return entry


# --- Export as a fast-agent project with ${VAR} placeholders. ---

def placeholder_names(servers: dict[str, dict]) -> dict[tuple[str, str, str], str]:
    """{(server, section, key): VAR}. Env keys keep their own name unless two servers share it; header
    names become SERVER_HEADER (e.g. GITHUB_AUTHORIZATION)."""
    env_owners: dict[str, int] = {}
    for entry in servers.values():
        for key in entry.get("env", {}):
            env_owners[key] = env_owners.get(key, 0) + 1
    names = {}
    for server, entry in servers.items():
        prefix = re.sub(r"[^A-Z0-9]+", "_", server.upper()).strip("_")
        for key in entry.get("env", {}):
            names[(server, "env", key)] = key if env_owners[key] == 1 else f"{prefix}_{key}"
        for key in entry.get("headers", {}):
            names[(server, "headers", key)] = f"{prefix}_{re.sub(r'[^A-Z0-9]+', '_', key.upper())}"
    return names


def export_project(*, name: str, instruction: str, model: str, servers: dict[str, dict]) -> dict:
    """{"files": {filename: text}, "placeholders": [VAR, ...]} for a ready-to-run fast-agent project."""
    names = placeholder_names(servers)
    config_servers: dict[str, dict] = {}
    for server, entry in servers.items():
        out: dict[str, Any] = {"transport": entry.get("transport", "stdio")}
        if out["transport"] == "stdio":
            out["command"] = entry["command"]
            out["args"] = list(entry.get("args", []))
            if entry.get("env") or entry.get("defaults"):
                out["env"] = {**entry.get("defaults", {}),
                              **{key: "${%s}" % names[(server, "env", key)] for key in entry.get("env", {})}}
        else:
            out["url"] = entry["url"]
            if entry.get("headers"):
                out["headers"] = {key: "${%s}" % names[(server, "headers", key)] for key in entry["headers"]}
        config_servers[server] = out
    config = {"default_model": model, "mcp": {"servers": config_servers}}
    config_text = "# fast-agent project exported by mcpagent. Secrets are ${VAR} placeholders: set them in\n" \
                  "# the environment (or a .env file next to this one) before `uv run agent.py`.\n"
    config_text += yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    agent_py = _AGENT_TEMPLATE.format(
        app_name=repr(name or "mcpagent"), instruction=repr(instruction), servers=repr(list(servers)), model=repr(model)
    )
    variables = sorted(set(names.values()))
    env_example = "".join(f"{var}=\n" for var in variables)
    files = {"fastagent.config.yaml": config_text, "agent.py": agent_py}
    if variables:
        files[".env.example"] = env_example
    return {"files": files, "placeholders": variables}


_AGENT_TEMPLATE = '''"""Run with `uv run agent.py` (or `python agent.py` with fast-agent-mcp installed)."""

import asyncio

from fast_agent import FastAgent

fast = FastAgent({app_name})


@fast.agent(
    name="agent",
    instruction={instruction},
    servers={servers},
    model={model},
)
async def main() -> None:
    async with fast.run() as agent:
        await agent.interactive()


if __name__ == "__main__":
    asyncio.run(main())
'''
