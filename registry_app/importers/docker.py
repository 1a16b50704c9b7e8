"""The Docker MCP catalog folder: `servers/<name>/server.yaml` (+ optional `tools.json`).

Docker declares credentials most carefully: `config.secrets` (always secret), `config.env` whose values point
at user `parameters` (`{{server.param}}`), parameters used in `run.command` / `run.volumes`, and `oauth`
blocks. All of them become credential requirements; the container recipe passes each one with `-e KEY`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

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
    long_text,
    make_slug,
    normalise_repository_url,
    oci_recipe,
    optional_bool,
    read_json,
    remote_recipe,
    template_vars,
    text,
    to_template,
    tools_from,
)

MAX_YAML_BYTES = 1024 * 1024
ARCHIVED_TITLE = re.compile(r"\(archived\)\s*$", re.I)
# libyaml's safe loader when PyYAML was built with it (ten times faster), else the pure-Python one.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _servers_dir(path: Path) -> Path:
    return path / "servers" if (path / "servers").is_dir() else path


def detect(path: Path) -> bool:
    return path.is_dir() and any(_servers_dir(path).glob("*/server.yaml"))


def read(path: Path) -> ImportBatch:
    root = _servers_dir(path)
    files = sorted(root.glob("*/server.yaml"))
    if not files:
        raise SourceError(f"{path}: no servers/*/server.yaml files")
    batch = ImportBatch(source="docker", path=str(path))
    for file in files:
        location = str(file.relative_to(path))
        warnings: list[str] = []
        try:
            data = _load_yaml(file)
            record = _record(data, file, location, warnings)
        except RecordError as exc:
            batch.problems.append(Problem(location, str(exc)))
            continue
        batch.add_first(record, location, warnings, id_name="server name")
    return batch


def _load_yaml(file: Path) -> dict:
    if file.stat().st_size > MAX_YAML_BYTES:
        raise RecordError(f"server.yaml larger than {MAX_YAML_BYTES:,} bytes")
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except UnicodeDecodeError:
        raise RecordError("not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise RecordError(f"malformed YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise RecordError("server.yaml is not a mapping")
    return data


def _section(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _record(data: dict, file: Path, location: str, warnings: list[str]) -> ServerRecord:
    name = text(data.get("name"), MAX_NAME)
    if not name:
        raise RecordError("no name")
    about, meta, source = _section(data, "about"), _section(data, "meta"), _section(data, "source")
    config, run, remote = _section(data, "config"), _section(data, "run"), _section(data, "remote")
    title = text(about.get("title"), MAX_NAME) or name
    description = long_text(about.get("description"), limit=MAX_DESCRIPTION, what="description",
                            warnings=warnings)
    credentials, literal_env = _credentials(name, config, run, remote)
    for block in _list(data.get("oauth")):
        if isinstance(block, dict) and text(block.get("env"), 200):
            _apply_oauth(credentials, text(block.get("env"), 200), text(block.get("provider"), 100))
    launch: list[LaunchRecord] = []
    image = text(data.get("image"), 400)
    kind = text(data.get("type"), 20)
    if image and kind != "poci":
        volumes = [to_template(text(v, 1000)) for v in _list(run.get("volumes")) if text(v, 1000)]
        runtime_args = [arg for volume in volumes for arg in ("-v", volume)]
        command = [to_template(text(a, 1000)) for a in _list(run.get("command")) if text(a, 1000)]
        run_env = {text(k, 200): to_template(text(v, 2000)) for k, v in _section(run, "env").items() if text(k, 200)}
        env_keys = [c.key for c in credentials.values() if c.location == "env"]
        launch.append(oci_recipe(image, env_keys=env_keys, runtime_args=runtime_args, package_args=command,
                                 env={**literal_env, **run_env}))
    if text(remote.get("url"), 1000):
        headers = {text(k, 200): to_template(text(v, 1000)) for k, v in _section(remote, "headers").items()}
        launch.append(remote_recipe(to_template(text(remote.get("url"), 1000)),
                                    text(remote.get("transport_type"), 20), headers))
    tools = tools_from(data.get("tools"), where=location, warnings=warnings)
    tools_file = file.parent / "tools.json"
    if tools_file.is_file() and not tools:
        try:
            tools = tools_from(read_json(tools_file), where=str(tools_file.name), warnings=warnings)
        except SourceError as exc:
            warnings.append(f"tools.json ignored: {str(exc).removeprefix(f'{tools_file}: ')}")
    repo_url, subfolder = normalise_repository_url(text(source.get("project"), 1000))
    if repo_url and source.get("directory"):
        subfolder = text(source.get("directory"), 200).strip("/").lower()
    official = name.endswith("-official") or bool(OFFICIAL_WORDING.search(f"{title}. {description[:300]}"))
    # The catalog marks servers whose upstream code was archived in the title ("Slack (Archived)"): no longer
    # maintained, so deprecated (out of search; agents that already use one keep working).
    archived = bool(ARCHIVED_TITLE.search(title))
    return ServerRecord(
        source="docker",
        source_id=name,
        location=location,
        name=title,
        slug=make_slug(name),
        description=description,
        repository_url=repo_url,
        repository_subfolder=subfolder if repo_url else "",
        categories=[text(meta.get("category"), 100)],
        official=official,
        launch=launch,
        tools=tools,
        credentials=list(credentials.values()),
        signals={"docker": True},
        status="deprecated" if archived else "active",
    )


def _credentials(name: str, config: dict, run: dict, remote: dict) -> tuple[dict[str, CredentialRecord], dict]:
    """Credential requirements from secrets, env and parameters; plus the env vars with fixed values."""
    params_schema = _section(config, "parameters")
    params = {k: v for k, v in _section(params_schema, "properties").items() if isinstance(v, dict)}
    required_params = {p for p in _list(params_schema.get("required")) if isinstance(p, str)}
    header_text = " ".join(str(v) for v in _section(remote, "headers").values())
    credentials: dict[str, CredentialRecord] = {}
    literal_env: dict[str, str] = {}
    for secret in _list(config.get("secrets")):
        if not isinstance(secret, dict):
            continue
        key = text(secret.get("env"), 200) or text(secret.get("name"), 200).split(".")[-1].upper()
        if not key:
            continue
        in_header = key in template_vars(header_text)
        credentials[key] = CredentialRecord(
            key=key,
            location="header" if in_header else "env",
            description=text(secret.get("description"), 4000),
            required=optional_bool(secret.get("required")) if "required" in secret else True,
            secret=True,
            example=text(secret.get("example"), 300),
        )
    used_params: set[str] = set()
    for var in _list(config.get("env")):
        if not isinstance(var, dict) or not text(var.get("name"), 200):
            continue
        key = text(var.get("name"), 200)
        value = text(var.get("value"), 2000)
        refs = [p for p in template_vars(value) if p in params]
        if value and not template_vars(value):
            literal_env[key] = value
            continue
        used_params.update(refs)
        param = params.get(refs[0], {}) if refs else {}
        required = optional_bool(var.get("required"))
        credentials.setdefault(key, CredentialRecord(
            key=key,
            description=text(var.get("description") or param.get("description"), 4000),
            required=required if required is not None else any(r in required_params for r in refs),
            secret=False,
            default=text(var.get("default", param.get("default")), 500),
            example=text(var.get("example"), 300),
            choices=[text(c, 300) for c in _list(param.get("enum"))],
        ))
    run_text = " ".join(str(a) for a in _list(run.get("command")))
    volume_text = " ".join(str(v) for v in _list(run.get("volumes")))
    for param, spec in params.items():
        if param in used_params:
            continue
        in_volume = param in template_vars(volume_text)
        if not (in_volume or param in template_vars(run_text)):
            continue
        credentials.setdefault(param, CredentialRecord(
            key=param,
            location="file" if in_volume else "arg",
            description=text(spec.get("description"), 4000),
            required=param in required_params,
            secret=False,
            default=text(spec.get("default"), 500),
            choices=[text(c, 300) for c in _list(spec.get("enum"))],
            kind="file_path" if in_volume else "",
        ))
    return credentials, literal_env


def _apply_oauth(credentials: dict[str, CredentialRecord], key: str, provider: str) -> None:
    note = f"Docker's catalog obtains it by OAuth sign-in with {provider}." if provider else ""
    cred = credentials.get(key)
    if cred is None:
        credentials[key] = CredentialRecord(key=key, required=True, secret=True, kind="token",
                                            description=f"{provider.title()} OAuth access token. {note}".strip())
    elif note and note not in cred.description:
        cred.description = f"{cred.description} {note}".strip()
