"""The official MCP registry's server.json format: a dump of it (`production_servers.json`) and, through
`record_from_server_json`, the pages the live API returns (see registry_api.py).

Only the latest version of each server is kept (`_meta[...official].isLatest`). Environment variables and
remote headers carry explicit `isRequired` / `isSecret` / `format` / `choices`, which makes this the most
authoritative source for credential flags.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .common import (
    MAX_DESCRIPTION,
    MAX_NAME,
    OFFICIAL_WORDING,
    CredentialRecord,
    ImportBatch,
    LaunchRecord,
    Problem,
    RecordError,
    ServerRecord,
    SourceError,
    finish,
    long_text,
    make_slug,
    normalise_http_url,
    normalise_repository_url,
    npm_recipe,
    oci_recipe,
    optional_bool,
    pypi_recipe,
    read_json,
    remote_recipe,
    template_vars,
    text,
    to_template,
)

OFFICIAL_META = "io.modelcontextprotocol.registry/official"
# Name parts that say nothing about the product: "com.notion/mcp" is Notion's own server.
_GENERIC_TOKENS = {"mcp", "server", "servers", "official", "remote", "model", "context", "protocol", "api"}


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with path.open("rb") as file:
        head = file.read(4096).decode("utf-8", "ignore")
    if "server.schema.json" in head or OFFICIAL_META in head or '"registryType"' in head:
        return True
    # A list of server.json documents: reverse-DNS names ("io.github.owner/server").
    return bool(re.search(r'"servers"\s*:\s*\[', head) and re.search(r'"name"\s*:\s*"[\w.-]+\.[\w-]+/', head))


def read(path: Path) -> ImportBatch:
    data = read_json(path)
    if isinstance(data, dict):
        entries = data.get("servers")
    else:
        entries = data
    if not isinstance(entries, list):
        raise SourceError(f"{path}: expected a list of servers (or an object with a 'servers' list)")
    batch = ImportBatch(source="official", path=str(path))
    chosen: dict[str, tuple[int, dict, dict]] = {}
    older = 0
    for index, entry in enumerate(entries):
        location = f"{path.name}#servers[{index}]"
        server, meta = split_entry(entry)
        if server is None:
            batch.problems.append(Problem(location, "not a server object"))
            continue
        name = text(server.get("name"), MAX_NAME)
        if not name:
            batch.problems.append(Problem(location, "server has no name"))
            continue
        if meta.get("isLatest") is False:
            older += 1
            continue
        if name in chosen:
            # Two "latest" entries (or two without registry metadata) for one name: the later one wins.
            batch.problems.append(Problem(f"{path.name}#servers[{chosen[name][0]}]",
                                          f"duplicate server name {name!r}: superseded by {location}"))
        chosen[name] = (index, server, meta)
    for index, server, meta in chosen.values():
        location = f"{path.name}#servers[{index}]"
        warnings: list[str] = []
        try:
            record = record_from_server_json(server, meta, source="official", location=location, warnings=warnings)
            batch.records.append(finish(record, warnings, batch.problems))
        except RecordError as exc:
            batch.problems.append(Problem(location, str(exc)))
    if older:
        batch.notes.append(f"{older} older versions ignored (not isLatest)")
    return batch


def split_entry(entry: Any) -> tuple[dict | None, dict]:
    """Accept both the dump's shape (server.json with `_meta` inline) and the API's ({server, _meta})."""
    if not isinstance(entry, dict):
        return None, {}
    if isinstance(entry.get("server"), dict):
        server = entry["server"]
        meta = (entry.get("_meta") or {}).get(OFFICIAL_META) or (server.get("_meta") or {}).get(OFFICIAL_META) or {}
    else:
        server = entry
        meta = (entry.get("_meta") or {}).get(OFFICIAL_META) or {}
    return server, meta if isinstance(meta, dict) else {}


def _namespace_label(name: str) -> tuple[str, str]:
    """'com.notion/mcp' -> ('notion', 'mcp'); 'io.github.octo/tool' -> ('octo', 'tool')."""
    namespace, _, part = name.partition("/")
    namespace = namespace.lower()
    if namespace.startswith("io.github."):
        label = namespace[len("io.github."):]
    else:
        labels = namespace.split(".")
        label = labels[1] if len(labels) > 1 else labels[0]
    return label, part


def _product_words(part: str) -> str:
    return "-".join(t for t in re.split(r"[-_.\s]+", part.lower()) if t and t not in _GENERIC_TOKENS)


def record_from_server_json(server: dict, meta: dict, *, source: str, location: str,
                            warnings: list[str]) -> ServerRecord:
    """Normalise one server.json document (+ the registry's metadata about it)."""
    name = text(server.get("name"), MAX_NAME)
    if not name:
        raise RecordError("server has no name")
    label, part = _namespace_label(name)
    product = _product_words(part)
    title = text(server.get("title"), MAX_NAME)
    display = title or (label.replace("-", " ").title() if not product else part)
    description = long_text(server.get("description"), limit=MAX_DESCRIPTION, what="description", warnings=warnings)
    repository = server.get("repository") if isinstance(server.get("repository"), dict) else {}
    repo_url, subfolder = normalise_repository_url(repository.get("url") or "")
    if repository.get("subfolder"):
        subfolder = text(repository.get("subfolder"), 200).strip("/").lower()
    official = (not product or product.replace("-", "") == label.replace("-", "")
                or bool(OFFICIAL_WORDING.search(description[:300])) and label not in _REPUBLISHERS)
    status = text(meta.get("status") or server.get("status"), 20).lower()
    launch: list[LaunchRecord] = []
    credentials: dict[str, CredentialRecord] = {}
    for package in server.get("packages") or []:
        if isinstance(package, dict):
            recipe = _package_recipe(package, credentials)
            if recipe:
                launch.append(recipe)
    for remote in server.get("remotes") or []:
        if isinstance(remote, dict) and text(remote.get("url"), 1000):
            launch.append(_remote_recipe(remote, credentials))
    slug = part if part.lower().startswith(label) or not label else f"{label}-{part}"
    return ServerRecord(
        source=source,
        source_id=name,
        location=location,
        name=display,
        slug=make_slug(slug),
        description=description,
        repository_url=repo_url,
        repository_subfolder=subfolder if repo_url else "",
        homepage=normalise_http_url(server.get("websiteUrl")),
        status={"deprecated": "deprecated", "deleted": "hidden"}.get(status, "active"),
        official=official,
        launch=launch,
        credentials=list(credentials.values()),
        signals={"official_registry": True},
        extra_keys=[f"mcpreg:{name.lower()}"],
    )


# Namespaces that republish other vendors' servers: "official" wording in their descriptions is about the
# wrapped service, not about them.
_REPUBLISHERS = {"smithery", "waystation", "mintmcp"}


def _input_credential(key: str, spec: dict, location: str) -> CredentialRecord:
    fmt = text(spec.get("format"), 50)
    raw_choices = spec.get("choices") if isinstance(spec.get("choices"), list) else []
    choices = [text(c, 300) for c in raw_choices if text(c, 300)]
    return CredentialRecord(
        key=key[:200],
        location=location,
        description=text(spec.get("description"), 4000),
        required=optional_bool(spec.get("isRequired")),
        secret=optional_bool(spec.get("isSecret")),
        format=fmt,
        default=text(spec.get("default"), 500),
        choices=choices,
        example=text(spec.get("placeholder"), 300),
        kind="file_path" if fmt == "filepath" else "",
    )


def _add(credentials: dict[str, CredentialRecord], cred: CredentialRecord) -> None:
    current = credentials.get(cred.key)
    if current is None or (not current.description and cred.description):
        credentials[cred.key] = cred


def _resolve_value(value: str, spec: dict, credentials: dict[str, CredentialRecord], location: str,
                   *, needed: bool = False) -> str:
    """A value with `{var}` placeholders: each variable becomes a credential; returns the "${var}" template.
    `needed`: the value cannot be built without its variables (a remote's URL), so one with no default counts
    as required whatever the source says."""
    variables = spec.get("variables") if isinstance(spec.get("variables"), dict) else {}
    for var in template_vars(value):
        var_spec = variables.get(var) if isinstance(variables.get(var), dict) else {}
        description = var_spec.get("description") or spec.get("description")
        cred = _input_credential(var, {**var_spec, "description": description}, location)
        if needed and not cred.default:
            cred.required = True
        _add(credentials, cred)
    return to_template(value)


def _arguments(items: Any, credentials: dict[str, CredentialRecord], *, runtime_for: str = "") -> list[str]:
    """Runtime/package arguments as argv. Optional arguments without a value are left out (they are flags a
    user may add, not something needed to start the server).

    With `runtime_for` (the package identifier) these are the launcher's own arguments, which publishers often
    fill with the whole command (`run -i --rm -e X image`, `-y package@latest`): the recipe already has those,
    so only named options with a value that is not the package itself are kept (`-p 8080:8080`, `-v ...`)."""
    argv: list[str] = []
    for arg in items if isinstance(items, list) else []:
        if not isinstance(arg, dict):
            continue
        value = text(arg.get("value"), 1000)
        if runtime_for and (arg.get("type") != "named" or not value or runtime_for.lower() in value.lower()):
            continue
        required = optional_bool(arg.get("isRequired")) is True
        default = text(arg.get("default"), 500)
        if arg.get("type") == "named":
            flag = text(arg.get("name"), 200)
            if not flag:
                continue
            if value:
                argv += [flag, _resolve_value(value, arg, credentials, "arg")]
            elif required or default:
                key = flag.lstrip("-")
                _add(credentials, _input_credential(key, arg, "arg"))
                argv += [flag, "${" + key + "}"]
        else:
            hint = text(arg.get("valueHint"), 200)
            if value:
                argv.append(_resolve_value(value, arg, credentials, "arg"))
            elif hint and (required or default):
                _add(credentials, _input_credential(hint, arg, "arg"))
                argv.append("${" + hint + "}")
    return argv


def _package_recipe(package: dict, credentials: dict[str, CredentialRecord]) -> LaunchRecord | None:
    registry = text(package.get("registryType") or package.get("registry_type"), 40).lower()
    identifier = text(package.get("identifier") or package.get("name"), 400)
    if not identifier:
        return None
    version = text(package.get("version"), 100)
    if version == "latest":
        version = ""
    transport = package.get("transport") if isinstance(package.get("transport"), dict) else {}
    transport_type = text(transport.get("type"), 20) or "stdio"
    transport_url = to_template(text(transport.get("url"), 1000))
    env: dict[str, str] = {}
    env_keys: list[str] = []
    for var in package.get("environmentVariables") or []:
        if not isinstance(var, dict) or not text(var.get("name"), 200):
            continue
        key = text(var.get("name"), 200)
        value = text(var.get("value"), 1000)
        if not value or re.fullmatch(r"<[^>]*>", value):
            cred = _input_credential(key, var, "env")
            cred.example = cred.example or value
            _add(credentials, cred)
            env_keys.append(key)
        elif template_vars(value) == [value.strip("{}")] and value.startswith("{"):
            # The whole value is one variable: ask for the env var itself.
            variables = var.get("variables") if isinstance(var.get("variables"), dict) else {}
            spec = {**(variables.get(value.strip("{}")) or {}), "description": var.get("description")
                    or (variables.get(value.strip("{}")) or {}).get("description")}
            _add(credentials, _input_credential(key, spec, "env"))
            env_keys.append(key)
        elif template_vars(value):
            env[key] = _resolve_value(value, var, credentials, "env")
        else:
            env[key] = value  # a fixed value the publisher sets; not for the user to change
    runtime_args = _arguments(package.get("runtimeArguments"), credentials, runtime_for=identifier)
    package_args = _arguments(package.get("packageArguments"), credentials)
    common = {"transport": transport_type, "url": transport_url}
    if registry == "npm":
        recipe = npm_recipe(identifier, version, runtime_args=runtime_args, package_args=package_args, **common)
    elif registry == "pypi":
        recipe = pypi_recipe(identifier, version, runtime_args=runtime_args, package_args=package_args, **common)
    elif registry in ("oci", "docker"):
        recipe = oci_recipe(identifier, version, env_keys=env_keys, runtime_args=runtime_args,
                            package_args=package_args, env=env, **common)
    elif registry == "nuget":
        recipe = LaunchRecord(kind="other", identifier=identifier, version=version, command="dnx",
                              args=[f"{identifier}@{version}" if version else identifier, "--yes", *package_args],
                              **common)
    else:  # mcpb bundles and anything newer: keep what we know, no launcher
        recipe = LaunchRecord(kind="other", identifier=identifier, version=version, args=package_args, **common)
    recipe.env = {**recipe.env, **env}
    return recipe


def _remote_recipe(remote: dict, credentials: dict[str, CredentialRecord]) -> LaunchRecord:
    headers: dict[str, str] = {}
    for header in remote.get("headers") or []:
        if not isinstance(header, dict) or not text(header.get("name"), 200):
            continue
        name = text(header.get("name"), 200)
        value = text(header.get("value"), 1000)
        if not value:
            _add(credentials, _input_credential(name, header, "header"))
            headers[name] = "${" + name + "}"
        elif template_vars(value):
            headers[name] = _resolve_value(value, header, credentials, "header")
        else:
            headers[name] = value
    url = text(remote.get("url"), 1000)
    # "https://{tenant}.example.com/mcp": each URL variable is a setting the user provides.
    url = _resolve_value(url, remote, credentials, "arg", needed=True) if template_vars(url) else url
    return remote_recipe(url, text(remote.get("type") or remote.get("transport_type"), 20), headers)
