"""MCP server entries: built from catalogue launch recipes, stored with secret references, resolved for a
start, and exported as a fast-agent project.

A stored entry (Agent.mcp_config["mcpServers"][name]) never holds a secret value: every env value, header value
and credential argument is a reference `{"$credential": "<key>"}` resolved through agents_app.secrets at start
time. A reference may carry a "template" ("Bearer ${KEY}", "--repository=${KEY}") that wraps the value, and
"file": true when the credential is a stored file: the server then gets the path of the file, written (decrypted)
into a private folder only while the server runs (mcpagent.vault.materialize.file_materialize). `args` items are
plain strings or such references.

A remote server's URL may be a template ("https://${tenant}.example.com/mcp", from the official registry's
`remotes[].url` variables): "url_vars" maps each variable to its reference, and the URL is filled at start, each
value encoded for the part of the URL it goes into (a host label, a port, a path segment, a query value) and
refused when it would change the URL's structure; the filled URL then passes the same checks as any remote URL.
"""

import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

import yaml

from agents_app import safety
from agents_app.references import REFERENCE, is_file_reference, is_reference, reference
from mcpagent.errors import ApplicationError

TEMPLATE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
URL_VARS = "url_vars"
HOST_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def _filled(ref: dict, value: str) -> str:
    """The reference's template ("Bearer ${KEY}"; "${KEY}" when it has none) with `value` in place of "${KEY}"."""
    key = ref[REFERENCE]
    return (ref.get("template") or "${%s}" % key).replace("${%s}" % key, value)


def _arg_refs(entry: dict) -> list[dict]:
    return [a for a in entry.get("args") or [] if is_reference(a)]


def _url_refs(entry: dict) -> dict[str, dict]:
    """{template variable: reference} of a remote entry whose URL is a template."""
    url_vars = entry.get(URL_VARS)
    return {var: ref for var, ref in url_vars.items() if is_reference(ref)} if isinstance(url_vars, dict) else {}


def _references(entry: dict) -> list[dict]:
    refs = [v for section in ("env", "headers") for v in (entry.get(section) or {}).values() if is_reference(v)]
    return refs + _arg_refs(entry) + list(_url_refs(entry).values())


def value_keys(entry: dict) -> list[str]:
    """Credential keys whose stored values the entry needs at start (env, headers, arguments)."""
    return sorted({ref[REFERENCE] for ref in _references(entry) if not ref.get("file")})


def file_keys(entry: dict) -> list[str]:
    """Keys of the stored files the entry needs materialized while the server runs."""
    return sorted({ref[REFERENCE] for ref in _references(entry) if ref.get("file")})


def arg_placeholder(ref: dict) -> str:
    """A stand-in for a reference argument in the safety check: "{KEY}" (in its template) is no package, module
    or image name, so a reference in a launcher's own position is refused; after the package it is the server's."""
    return _filled(ref, "{%s}" % ref[REFERENCE])


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
            *(a[REFERENCE] for a in _arg_refs(entry)),
            *(ref[REFERENCE] for ref in _url_refs(entry).values())]


# --- URL templates ---------------------------------------------------------------------------------------

_PART_RULES = {
    "host": "must be a host name: letters, digits, '-' and '.' (no '/', '@', ':', '?', '#' or spaces)",
    "label": "must be one part of a host name: letters, digits and '-' (no '.', '/', '@', ':', '?', '#' or spaces)",
    "port": "must be a port number (1-65535)",
    "path": "must not be '.' or '..'",
    "query": "",
    "fragment": "",
}


def _marked(template: str, variables: list[str]) -> tuple[str, dict[str, str]]:
    """The template with each "${VAR}" replaced by a stand-in that fits in any part of a URL (a host label)."""
    marks: dict[str, str] = {}
    for n, var in enumerate(variables):
        mark = f"mcpvar{n}x"
        while mark in template:
            mark += "x"
        marks[var] = mark
        template = template.replace("${%s}" % var, mark)
    return template, marks


def _split_netloc(netloc: str) -> tuple[str, str, str]:
    userinfo, _, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        return userinfo, host + "]", rest.removeprefix(":")
    host, _, port = hostport.partition(":")
    return userinfo, host, port


def url_variable_parts(template: str, variables: Any) -> dict[str, str]:
    """{VAR: the part of the URL "${VAR}" is in}: "host" (the whole host name), "label" (part of the host name),
    "port", "path", "query" or "fragment". ValueError for a variable in the scheme or the user:password part
    (a value must never choose the protocol or smuggle credentials) or one the template does not have."""
    variables = list(dict.fromkeys(variables))
    marked, marks = _marked(template, variables)
    try:
        parts = urlsplit(marked)
    except ValueError:
        raise ValueError("the URL is not a valid URL") from None
    userinfo, host, port = _split_netloc(parts.netloc)
    found: dict[str, str] = {}
    for var, mark in marks.items():
        if mark in parts.scheme or mark in userinfo:
            raise ValueError(f"{var} is in the URL's scheme or user part; only the host, port, path and query "
                             "may come from a setting")
        if mark in host:
            found[var] = "host" if host.lower() == mark else "label"
        elif mark in port:
            found[var] = "port"
        else:
            part = next((name for name in ("path", "query", "fragment") if mark in getattr(parts, name)), None)
            if part is None:
                raise ValueError(f"the URL has no ${{{var}}}")
            found[var] = part
    return found


def url_part_value(part: str, value: str) -> str | None:
    """`value` encoded for its part of a URL, or None when it cannot go there without changing the URL's
    structure. Host names are IDNA-encoded and checked label by label (a variable that is only part of the
    host is one label: no '.', so "${tenant}.example.com" stays under example.com); path segments, query
    and fragment values are percent-encoded, '/', '?', '#', '%' and '&' included."""
    value = str(value)
    if part in ("host", "label"):
        try:
            encoded = value.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
        labels = encoded.split(".") if part == "host" else [encoded]
        if len(encoded) > 253 or not all(HOST_LABEL_RE.match(label) for label in labels):
            return None
        return encoded
    if part == "port":
        return str(int(value)) if re.fullmatch(r"[0-9]{1,5}", value) and 0 < int(value) < 65536 else None
    if part == "path" and value in (".", ".."):
        return None
    return quote(value, safe="")


def _same_structure(template: str, marks: dict[str, str], encoded: dict[str, str], filled: str) -> bool:
    """The filled URL splits into exactly the template's parts with the values in place: no value moved a
    boundary (scheme, user part, host, port, path, query, fragment)."""
    def put(text: str) -> str:
        for var, mark in marks.items():
            if var in encoded:
                text = text.replace(mark, encoded[var])
        return text

    expected = urlsplit(template)
    expected = SplitResult(*(put(getattr(expected, name)) for name in expected._fields))
    try:
        actual = urlsplit(filled)
        actual.port  # noqa: B018 -- raises on a malformed port
    except ValueError:
        return False
    return actual == expected


def fill_url(*, name: str, template: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """(the URL with each "${VAR}" in `values` filled, the forms of the values as they appear in it). A value that
    cannot go where its variable is, or a filled URL a remote server may not have (see safety.url_problem), is a
    409 credential_invalid naming the setting, never its value."""
    variables = list(values)
    try:
        parts = url_variable_parts(template, variables)
    except ValueError as exc:
        raise ApplicationError(f"MCP server '{name}' has a URL that cannot be filled: {exc}.",
                               code="recipe_unusable", details={"server": name}) from None
    encoded: dict[str, str] = {}
    for var in variables:
        value = url_part_value(parts[var], values[var])
        if value is None:
            raise ApplicationError(
                f"MCP server '{name}': the value of {var} cannot go into its URL (the {parts[var]} part): it "
                f"{_PART_RULES[parts[var]]}.",
                code="credential_invalid", status=409,
                details={"server": name, "credential": var, "url_part": parts[var],
                         "hint": f"Provide a correct value for {var} and retry."},
            )
        encoded[var] = value
    marked, marks = _marked(template, variables)
    filled = template
    for var, value in encoded.items():
        filled = filled.replace("${%s}" % var, value)
    problem = None if _same_structure(marked, marks, encoded, filled) else "changes the URL's structure"
    problem = problem or safety.filled_url_problem(filled)
    if problem:
        keys = ", ".join(variables)
        raise ApplicationError(
            f"MCP server '{name}': the URL filled with {keys} is not allowed: it {problem}.",
            code="credential_invalid", status=409,
            details={"server": name, "credential": variables[0], "credentials": variables, "problem": problem,
                     "hint": f"Provide a correct value for {keys} and retry."},
        )
    shown = [str(values[var]) for var in variables]
    shown += [form for var in variables for form in (encoded[var], str(values[var]).lower())]
    return filled, list(dict.fromkeys(shown))


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
    # Credential keys filled into the URL, and the values as given and as encoded in it.
    url_keys: list[str] = field(default_factory=list)
    url_values: list[str] = field(default_factory=list)
    # The decrypted files this start materialized for the server (mounted read-only into its sandbox).
    file_paths: list[str] = field(default_factory=list)
    # Hosts the catalogue narrows the server's network to (empty: any public host).
    egress_hosts: list[str] = field(default_factory=list)
    # Env vars the catalogue recipe says the server reads its proxy from (its sandbox sets them to the egress proxy).
    proxy_env: list[str] = field(default_factory=list)
    # Env settings that are the catalogue recipe's literal defaults ("SLACK_MCP_ADD_MESSAGE_TOOL": "true"): not
    # the user's, and no secrets.
    default_keys: list[str] = field(default_factory=list)
    # A remote server's Authorization header is the end user's MCP authorization token from the vault.
    vault_bearer: bool = False

    @property
    def secret_keys(self) -> list[str]:
        return [*(k for k in self.env if k not in self.default_keys), *self.headers, *self.arg_keys, *self.url_keys]

    @property
    def secret_values(self) -> list[str]:
        env = [v for k, v in self.env.items() if k not in self.default_keys]
        return [v for v in (*env, *self.headers.values(), *self.arg_values, *self.url_values) if len(v) >= 4]


def launch_spec(*, name: str, entry: dict, values: dict[str, str], files: dict[str, Any] | None = None,
                label: str = "") -> LaunchSpec:
    """Resolve an entry's references with `values` ({key: value} from the credentials service) and `files`
    ({key: path} of the files materialized for this start)."""
    files = files or {}

    def raw_value(ref: dict) -> str:
        key = ref[REFERENCE]
        source = files if ref.get("file") else values
        if key not in source:
            what, hint = (("the file", "Upload it again (POST /api/sessions/{id}/files with its key) and retry.")
                          if ref.get("file")
                          else ("the credential", "Connect it again (send it in `credentials`) and retry."))
            raise ApplicationError(
                f"MCP server '{name}' needs {what} {key}, which is not stored (its connection was deleted, or it "
                "expired).",
                code="credential_missing", status=409,
                details={"server": name, "credential": key, "hint": hint},
            )
        return str(source[key])

    def resolve(section: str) -> dict[str, str]:
        return {key: _filled(value, raw_value(value)) if is_reference(value) else value
                for key, value in entry.get(section, {}).items()}

    args: list[str] = []
    arg_keys: list[str] = []
    arg_values: list[str] = []
    for item in entry.get("args", []):
        if is_reference(item):
            raw = raw_value(item)
            value = _filled(item, raw)
            if not item.get("template") and not item.get("file") and value.startswith("-"):
                # A whole argument: the server's command line would read the value as an option of its own.
                raise ApplicationError(
                    f"The setting {item[REFERENCE]} of MCP server '{name}' cannot start with '-'.",
                    code="credential_invalid", status=409,
                    details={"server": name, "credential": item[REFERENCE], "hint": "Provide it again and retry."},
                )
            if not item.get("file") and entry.get("command") != "docker":
                _check_host_paths(name=name, key=item[REFERENCE], value=value)
            args.append(value)
            arg_keys.append(item[REFERENCE])
            arg_values.append(raw)
        else:
            args.append(item)
    url, url_keys, url_values = entry.get("url", ""), [], []
    url_refs = _url_refs(entry)
    if url_refs:
        url_keys = list(dict.fromkeys(ref[REFERENCE] for ref in url_refs.values()))
        url, url_values = fill_url(name=name, template=url,
                                   values={var: raw_value(ref) for var, ref in url_refs.items()})
    env = resolve("env")
    return LaunchSpec(
        name=name, label=label or name, transport=entry.get("transport", "stdio"),
        command=entry.get("command", ""), args=args,
        env={**entry.get("defaults", {}), **env},
        default_keys=[key for key in entry.get("defaults", {}) if key not in env],
        url=url, headers=resolve("headers"),
        arg_keys=list(dict.fromkeys(arg_keys)), arg_values=arg_values, url_keys=url_keys, url_values=url_values,
        file_paths=[str(path) for path in files.values()],
    )


def _check_host_paths(*, name: str, key: str, value: str) -> None:
    """A credential argument naming a host path keeps to the rule of literal paths (safety.path_problem): it is
    checked here, once its value is known. A stored file's path is ours, and docker arguments are container paths."""
    problem = safety.argument_path_problem(value)
    if problem:
        raise ApplicationError(
            f"The setting {key} of MCP server '{name}' is not allowed: {problem}.",
            code="credential_invalid", status=409,
            details={"server": name, "credential": key, "hint": "Provide it again and retry."},
        )


def _shown_arg(item: Any) -> Any:
    return _filled(item, "${%s}" % item[REFERENCE]) if is_reference(item) else item


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

# The launcher of a package recipe that names none of its own.
RECIPE_LAUNCHERS = {"npm": "npx", "pypi": "uvx", "oci": "docker"}

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
        # A key a header template already carries (Authorization: Bearer ${API_KEY}) is not sent again as a header
        # of its own name.
        headers = {k: reference(k) for k in header_keys if k not in header_refs and k not in used}
        url, url_vars = _url_template(recipe, values=values, defaults=defaults_for_args)
        entry = {"transport": transport, "url": url, "headers": {**headers, **header_refs}}
        if url_vars:
            entry[URL_VARS] = url_vars
        return entry
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


def _url_template(recipe: Any, *, values: set[str], defaults: dict[str, str]) -> tuple[str, dict[str, dict]]:
    """(URL, {VAR: reference}) for a remote recipe whose URL has "${VAR}" variables: a collected setting is a
    reference filled at start; an uncollected one with a default takes the default (encoded for its place);
    any other stays a reference, so starting says which setting is missing (a URL has no optional parts)."""
    url = recipe.url
    variables = list(dict.fromkeys(TEMPLATE_RE.findall(url)))
    if not variables:
        return url, {}
    try:
        parts = url_variable_parts(url, variables)
    except ValueError as exc:
        raise ApplicationError(f"The catalogue's URL for {recipe.server} cannot be used: {exc}.",
                               code="recipe_unusable") from None
    url_vars: dict[str, dict] = {}
    for var in variables:
        if var not in values and var in defaults:
            value = url_part_value(parts[var], defaults[var])
            if value is None:
                raise ApplicationError(
                    f"The catalogue's default for {var} of {recipe.server} cannot go into its URL.",
                    code="recipe_unusable")
            url = url.replace("${%s}" % var, value)
        else:
            url_vars[var] = reference(var)
    return url, url_vars


# --- Export as a fast-agent project with ${VAR} placeholders. ---

def _var(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", key)


def placeholder_names(servers: dict[str, dict]) -> dict[tuple[str, str, str], str]:
    """{(server, section, key): VAR}. Env keys and credential arguments keep their own name unless two servers
    share it (then SERVER_KEY); header names become SERVER_HEADER (e.g. GITHUB_AUTHORIZATION)."""
    owners: dict[str, int] = {}
    for entry in servers.values():
        for var in {*entry.get("env", {}), *(_var(ref[REFERENCE]) for ref in [*_arg_refs(entry),
                                                                             *_url_refs(entry).values()])}:
            owners[var] = owners.get(var, 0) + 1
    names = {}
    for server, entry in servers.items():
        prefix = re.sub(r"[^A-Z0-9]+", "_", server.upper()).strip("_")
        for key in entry.get("env", {}):
            names[(server, "env", key)] = key if owners[key] == 1 else f"{prefix}_{key}"
        for ref in _arg_refs(entry):
            var = _var(ref[REFERENCE])
            names[(server, "args", ref[REFERENCE])] = var if owners[var] == 1 else f"{prefix}_{var}"
        for ref in _url_refs(entry).values():
            var = _var(ref[REFERENCE])
            names[(server, "url", ref[REFERENCE])] = var if owners[var] == 1 else f"{prefix}_{var}"
        for key in entry.get("headers", {}):
            names[(server, "headers", key)] = f"{prefix}_{re.sub(r'[^A-Z0-9]+', '_', key.upper())}"
    return names


def export_project(*, name: str, instruction: str, model: str, servers: dict[str, dict]) -> dict:
    """{"files": {filename: text}, "placeholders": [VAR, ...]} for a ready-to-run fast-agent project. Credentials
    are ${VAR} placeholders, also in arguments; for a stored file, VAR is the path of the user's own copy."""
    names = placeholder_names(servers)
    config_servers: dict[str, dict] = {}
    file_vars: set[str] = set()
    url_vars: set[str] = set()
    for server, entry in servers.items():
        out: dict[str, Any] = {"transport": entry.get("transport", "stdio")}
        if out["transport"] == "stdio":
            out["command"] = entry["command"]
            out["args"] = []
            for item in entry.get("args", []):
                if is_reference(item):
                    var = names[(server, "args", item[REFERENCE])]
                    out["args"].append(_filled(item, "${%s}" % var))
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
            for template_var, ref in _url_refs(entry).items():
                var = names[(server, "url", ref[REFERENCE])]
                out["url"] = out["url"].replace("${%s}" % template_var, "${%s}" % var)
                url_vars.add(var)
            if entry.get("headers"):
                out["headers"] = {key: "${%s}" % names[(server, "headers", key)] for key in entry["headers"]}
        config_servers[server] = out
    config = {"default_model": model, "mcp": {"servers": config_servers}}
    config_text = "# fast-agent project exported by mcpagent. Secrets are ${VAR} placeholders: set them in\n" \
                  "# the environment (or a .env file next to this one) before `uv run agent.py`.\n"
    config_text += yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    agent_py = _AGENT_TEMPLATE.format(
        app_name=repr(name or "mcpagent"), instruction=repr(instruction), servers=repr(list(servers)), model=repr(model),
        fast_agent_version=_fast_agent_version(),
    )
    variables = sorted(set(names.values()))
    env_example = "".join(("# the path of your copy of this file\n" if var in file_vars else "")
                          + ("# part of the server's URL, put in as is: URL-encode it if it has / ? # % or spaces\n"
                             if var in url_vars else "") + f"{var}=\n"
                          for var in variables)
    files = {"fastagent.config.yaml": config_text, "agent.py": agent_py}
    if variables:
        files[".env.example"] = env_example
    return {"files": files, "placeholders": variables}


def _fast_agent_version() -> str:
    # The version installed here is the one requirements.txt pins and the agent was validated with.
    return metadata.version("fast-agent-mcp")


# PEP 723 inline script metadata: `uv run agent.py` installs fast-agent-mcp (the version we run) by itself.
_AGENT_TEMPLATE = '''# /// script
# requires-python = ">=3.12"
# dependencies = ["fast-agent-mcp=={fast_agent_version}"]
# ///
"""Run with `uv run agent.py` (or `python agent.py` with fast-agent-mcp installed)."""

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
