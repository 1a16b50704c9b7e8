"""MCP server entries: built from catalogue launch recipes, stored with secret references, resolved for a
start, and exported as a fast-agent project.

A stored entry (Agent.mcp_config["mcpServers"][name]) never holds a secret value: every env value, header value
and credential argument is a reference `{"$credential": "<key>"}` resolved through agents_app.secrets at start
time. A reference may carry a "template" ("Bearer ${KEY}", "--repository=${KEY}") that wraps the value, and
"file": true when the credential is a stored file: the server then gets the path of the file, written (decrypted)
into a private folder only while the server runs (sessions_app.credentials.file_materialize). `args` items are
plain strings or such references.
"""

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from mcpagent.errors import ApplicationError

REFERENCE = "$credential"
TEMPLATE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


def reference(key: str, template: str | None = None, *, file: bool = False) -> dict[str, Any]:
    """A stored stand-in for a credential value; `template` ("Bearer ${KEY}") wraps it (catalogue headers and
    arguments); `file` says the value is the path of the stored file KEY, materialized for the server's life."""
    ref: dict[str, Any] = {REFERENCE: key}
    if template:
        ref["template"] = template
    if file:
        ref["file"] = True
    return ref


def is_reference(value: Any) -> bool:
    return (isinstance(value, dict) and REFERENCE in value and set(value) <= {REFERENCE, "template", "file"}
            and isinstance(value[REFERENCE], str) and isinstance(value.get("template", ""), str)
            and value.get("file", False) in (True, False))


def is_file_reference(value: Any) -> bool:
    return is_reference(value) and value.get("file") is True


def _references(entry: dict) -> list[dict]:
    refs = [v for section in ("env", "headers") for v in (entry.get(section) or {}).values() if is_reference(v)]
    return refs + [a for a in entry.get("args") or [] if is_reference(a)]


def value_keys(entry: dict) -> list[str]:
    """Credential keys whose stored values the entry needs at start (env, headers, arguments)."""
    return sorted({ref[REFERENCE] for ref in _references(entry) if not ref.get("file")})


def file_keys(entry: dict) -> list[str]:
    """Keys of the stored files the entry needs materialized while the server runs."""
    return sorted({ref[REFERENCE] for ref in _references(entry) if ref.get("file")})


def arg_placeholder(ref: dict) -> str:
    """A stand-in for a reference argument in the safety check: "{KEY}" (in its template) is no package, module
    or image name, so a reference in a launcher's own position is refused; after the package it is the server's."""
    key = ref[REFERENCE]
    return (ref.get("template") or "${%s}" % key).replace("${%s}" % key, "{%s}" % key)


def split_secrets(entry: dict) -> tuple[dict, dict[str, str]]:
    """(entry with every env/header value replaced by a reference, {key: value} to store as credentials).
    All values are treated as secrets: a user config does not say which ones are, and a wrongly named
    token must not end up in plain text. Arguments stay as given (strings, or references)."""
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
    return [*(key for section in ("env", "headers") for key in entry.get(section, {})),
            *(a[REFERENCE] for a in entry.get("args") or [] if is_reference(a))]


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
    # Credential keys passed as arguments, and the values (or file paths) put into those arguments.
    arg_keys: list[str] = field(default_factory=list)
    arg_values: list[str] = field(default_factory=list)

    @property
    def secret_keys(self) -> list[str]:
        return [*self.env, *self.headers, *self.arg_keys]

    @property
    def secret_values(self) -> list[str]:
        return [v for v in (*self.env.values(), *self.headers.values(), *self.arg_values) if len(v) >= 4]

    def redact(self, text: str) -> str:
        """Remove this server's secret values from text (stderr, exception messages) before anyone sees it."""
        for value in sorted(self.secret_values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


def launch_spec(*, name: str, entry: dict, values: dict[str, str], files: dict[str, Any] | None = None,
                label: str = "") -> LaunchSpec:
    """Resolve an entry's references with `values` ({key: value} from the credentials service) and `files`
    ({key: path} of the files materialized for this start)."""
    files = files or {}

    def value_of(ref: dict) -> str:
        key = ref[REFERENCE]
        source = files if ref.get("file") else values
        if key not in source:
            what, hint = (("the file", "Upload it again (POST /api/sessions/{id}/files with its key) and retry.")
                          if ref.get("file") else ("the credential", "Provide it again and retry."))
            raise ApplicationError(
                f"MCP server '{name}' needs {what} {key}, which is not stored (or has expired).",
                code="credential_missing", status=409,
                details={"server": name, "credential": key, "hint": hint},
            )
        value = str(source[key])
        template = ref.get("template")
        return template.replace("${%s}" % key, value) if template else value

    def resolve(section: str) -> dict[str, str]:
        return {key: value_of(value) if is_reference(value) else value
                for key, value in entry.get(section, {}).items()}

    args: list[str] = []
    arg_keys: list[str] = []
    arg_values: list[str] = []
    for item in entry.get("args", []):
        if is_reference(item):
            args.append(value_of(item))
            arg_keys.append(item[REFERENCE])
            source = files if item.get("file") else values
            arg_values.append(str(source[item[REFERENCE]]))
        else:
            args.append(item)
    return LaunchSpec(
        name=name, label=label or name, transport=entry.get("transport", "stdio"),
        command=entry.get("command", ""), args=args,
        env={**entry.get("defaults", {}), **resolve("env")},
        url=entry.get("url", ""), headers=resolve("headers"),
        arg_keys=list(dict.fromkeys(arg_keys)), arg_values=arg_values,
    )


def _shown_arg(item: Any) -> Any:
    if is_reference(item):
        return item.get("template") or "${%s}" % item[REFERENCE]
    return item


def public_entry(entry: dict) -> dict:
    """An entry for API responses: references shown as "set" (arguments as their "${KEY}" template), never values."""
    shown = {k: v for k, v in entry.items() if k in ("transport", "command", "url", "catalogue", "defaults")}
    if "args" in entry:
        shown["args"] = [_shown_arg(a) for a in entry["args"]]
    for section in ("env", "headers"):
        if section in entry:
            shown[section] = {key: "set" for key in entry[section]}
    return shown


# --- Catalogue launch recipes -> entries (the user never supplies these for catalogue servers). ---

def entry_from_recipe(recipe: Any, *, env_keys: list[str], header_keys: list[str], arg_keys: Any = (),
                      file_keys: Any = (), arg_defaults: dict[str, str] | None = None, omit_keys: Any = ()) -> dict:
    """An mcpServers entry for a registry_app.LaunchRecipe. The recipe carries its full argv (command + args)
    and env/header templates where "${KEY}" stands for the server's credential KEY. Values become references
    to the credential keys collected for the server; the recipe's literal, non-secret settings (e.g.
    IMAP_HOST=imap.gmail.com) go to "defaults", which the user's own values override.

    `env_keys`, `header_keys`, `arg_keys`: keys collected as values, by where their requirement puts them;
    `file_keys`: keys collected as files (the server gets the file's path: in the arguments or env values that
    name the key, else in the env var KEY). An argument naming a key that was not collected takes the
    requirement's default (`arg_defaults`), is left out (with a flag right before it) when the setting is
    optional (`omit_keys`), and otherwise stays a reference, so starting the server says which is missing."""
    values = set(env_keys) | set(header_keys) | set(arg_keys)
    files = set(file_keys)
    defaults_for_args = arg_defaults or {}
    omit = set(omit_keys)
    used: set[str] = set()

    def ref_for(key: str, value: str) -> dict:
        used.add(key)
        return reference(key, None if value == "${%s}" % key else value, file=key in files)

    def templated(section: dict) -> tuple[dict, dict]:
        refs, literals = {}, {}
        for key, value in (section or {}).items():
            names = TEMPLATE_RE.findall(str(value))
            if not names:
                literals[key] = str(value)
            elif names[0] in values or names[0] in files:
                refs[key] = ref_for(names[0], str(value))
        return refs, literals

    def templated_args(raw: list) -> list:
        argv: list = []
        for arg in raw:
            names = TEMPLATE_RE.findall(arg)
            if not names:
                argv.append(arg)
            elif names[0] in values or names[0] in files:
                argv.append(ref_for(names[0], arg))
            elif names[0] in defaults_for_args:
                argv.append(TEMPLATE_RE.sub(lambda m: defaults_for_args.get(m.group(1), m.group(0)), arg))
            elif names[0] in omit:
                if arg == "${%s}" % names[0] and argv and isinstance(argv[-1], str) and argv[-1].startswith("-") \
                        and "=" not in argv[-1]:
                    argv.pop()  # "--flag ${OPTIONAL}": the flag goes too
            else:
                argv.append(reference(names[0], None if arg == "${%s}" % names[0] else arg))
        return argv

    kind = recipe.kind
    if kind == "remote":
        if not recipe.url:
            raise ApplicationError(f"The catalogue has no URL for {recipe.server}.", code="recipe_unusable")
        transport = "sse" if recipe.transport == "sse" else "http"
        header_refs, _ = templated(getattr(recipe, "headers", {}))
        headers = {k: reference(k) for k in header_keys if k not in header_refs}
        return {"transport": transport, "url": recipe.url, "headers": {**headers, **header_refs}}
    env_refs, defaults = templated(getattr(recipe, "env", {}))
    recipe_args = templated_args([a for a in (recipe.args or []) if isinstance(a, str)])
    # A file no argument or env template places goes to the env var named by its key (e.g. a Google OAuth client
    # JSON in GOOGLE_OAUTH_CREDENTIALS).
    file_env = {k: reference(k, file=True) for k in sorted(files - used) if ENV_NAME_RE.match(k)}
    env = {**{k: reference(k) for k in env_keys}, **file_env, **env_refs}
    defaults = {k: v for k, v in defaults.items() if k not in env}
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

def _arg_refs(entry: dict) -> list[dict]:
    return [a for a in entry.get("args") or [] if is_reference(a)]


def _var(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", key)


def placeholder_names(servers: dict[str, dict]) -> dict[tuple[str, str, str], str]:
    """{(server, section, key): VAR}. Env keys and credential arguments keep their own name unless two servers
    share it (then SERVER_KEY); header names become SERVER_HEADER (e.g. GITHUB_AUTHORIZATION)."""
    owners: dict[str, int] = {}
    for entry in servers.values():
        for var in {*entry.get("env", {}), *(_var(ref[REFERENCE]) for ref in _arg_refs(entry))}:
            owners[var] = owners.get(var, 0) + 1
    names = {}
    for server, entry in servers.items():
        prefix = re.sub(r"[^A-Z0-9]+", "_", server.upper()).strip("_")
        for key in entry.get("env", {}):
            names[(server, "env", key)] = key if owners[key] == 1 else f"{prefix}_{key}"
        for ref in _arg_refs(entry):
            var = _var(ref[REFERENCE])
            names[(server, "args", ref[REFERENCE])] = var if owners[var] == 1 else f"{prefix}_{var}"
        for key in entry.get("headers", {}):
            names[(server, "headers", key)] = f"{prefix}_{re.sub(r'[^A-Z0-9]+', '_', key.upper())}"
    return names


def export_project(*, name: str, instruction: str, model: str, servers: dict[str, dict]) -> dict:
    """{"files": {filename: text}, "placeholders": [VAR, ...]} for a ready-to-run fast-agent project. Credentials
    are ${VAR} placeholders, also in arguments; for a stored file, VAR is the path of the user's own copy."""
    names = placeholder_names(servers)
    config_servers: dict[str, dict] = {}
    file_vars: set[str] = set()
    for server, entry in servers.items():
        out: dict[str, Any] = {"transport": entry.get("transport", "stdio")}
        if out["transport"] == "stdio":
            out["command"] = entry["command"]
            out["args"] = []
            for item in entry.get("args", []):
                if is_reference(item):
                    key, var = item[REFERENCE], names[(server, "args", item[REFERENCE])]
                    out["args"].append((item.get("template") or "${%s}" % key).replace("${%s}" % key, "${%s}" % var))
                    if item.get("file"):
                        file_vars.add(var)
                else:
                    out["args"].append(item)
            if entry.get("env") or entry.get("defaults"):
                out["env"] = dict(entry.get("defaults", {}))
                for key, value in entry.get("env", {}).items():
                    var = names[(server, "env", key)]
                    out["env"][key] = "${%s}" % var
                    if is_file_reference(value):
                        file_vars.add(var)
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
    env_example = "".join(("# the path of your copy of this file\n" if var in file_vars else "") + f"{var}=\n"
                          for var in variables)
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
