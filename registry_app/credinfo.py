"""Curated per-service credential instructions (config/credinfo.json): loading, validation and matching.

The file is read once per process and validated as a whole; a bad entry raises CredinfoError naming it, so a
curator's typo fails at start-up (and in the tests) instead of sending users wrong instructions.

Format (version 1), per service id:
  name, docs_url, match {keywords, substrings, env_prefixes}, optional extends + vars, credentials[], files[].
  - keywords: whole words or phrases matched against the tokens of a server's name, slug and repository path
    ("google drive" matches "mcp-google-drive"); substrings: distinctive names matched anywhere ("slack").
  - a credential answers to its `keys`, to every env_prefix + `suffixes` combination, and, only on a server
    whose name/slug/repository fits the service, to `context_keys` and (with generic: true) the file-wide
    `generic_keys` (API_KEY, TOKEN, ...), which say nothing about the service on their own.
  - `extends` copies the base service's credentials and files (overridable by id); `${var}` in their texts is
    filled from the merged `vars`, so one Google OAuth recipe serves Gmail, Drive, Calendar and Sheets.
  - `pattern` is anchored (^...$) so re.search, re.fullmatch and JavaScript all agree; `example` must match it and
    every `counter_examples` entry must not (checked at load).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SUPPORTED_VERSION = 1
KINDS = {"api_key", "token", "oauth_client", "password", "file_path", "url", "setting"}
FILE_FORMATS = {"json", "pem", "text", "directory"}
_SERVICE_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_KEY = re.compile(r"^[A-Z0-9_]+$")
_SERVICE_FIELDS = {"name", "docs_url", "match", "extends", "vars", "credentials", "files"}
_CREDENTIAL_FIELDS = {
    "id", "keys", "suffixes", "context_keys", "generic", "description", "kind", "secret", "required", "pattern",
    "example", "counter_examples", "instructions", "docs_url",
}
_FILE_FIELDS = {
    "id", "name", "description", "keys", "format", "filename", "required", "required_fields", "field_values",
    "instructions", "docs_url",
}


class CredinfoError(ImproperlyConfigured):
    """config/credinfo.json is malformed; the message names the file and the entry."""


@dataclass
class _Service:
    id: str
    name: str
    docs_url: str
    keywords: list[tuple[str, ...]]
    substrings: list[str]
    order: int
    credentials: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    # normalised key -> credential, split by how much evidence the key alone carries
    keys: dict[str, dict] = field(default_factory=dict)
    context_keys: dict[str, dict] = field(default_factory=dict)


@dataclass
class Credinfo:
    version: int
    services: dict[str, _Service]
    by_key: dict[str, list[tuple[_Service, dict]]]
    raw: dict


def normalise_key(key: str) -> str:
    """SLACK_BOT_TOKEN, slack-bot-token, --slack-bot-token and X-Api-Key headers all compare alike."""
    return re.sub(r"[^A-Z0-9]+", "_", key.strip().upper()).strip("_")


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


# Official-registry names are reverse-DNS ("io.github.someone/tool"): the hosting part says nothing about the service.
_HOSTING_NAMESPACE = re.compile(r"^(?:io|com)\.git(?:hub|lab)\.", re.IGNORECASE)


def _repository_path(url: str) -> str:
    """owner/repo of a repository URL: the host says nothing about the service (every GitHub repo has it)."""
    if not url:
        return ""
    parsed = urlparse(url if "://" in url else f"https://{url}")
    path = parsed.path.strip("/")
    return path[:-4] if path.endswith(".git") else path


# ---------------------------------------------------------------- loading and validation


def _fail(path: Path, where: str, problem: str) -> CredinfoError:
    return CredinfoError(f"{path}: {where}: {problem}")


def _str_list(value: Any, path: Path, where: str, *, allow_empty: bool = True) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, where, "must be a list of non-empty strings")
    if not allow_empty and not value:
        raise _fail(path, where, "must not be empty")
    return value


def _check_keys(values: list[str], path: Path, where: str) -> list[str]:
    for value in values:
        if not _KEY.match(value):
            raise _fail(path, where, f"{value!r} is not an UPPER_SNAKE env var name")
    return values


def _check_credential(cred: Any, path: Path, where: str) -> None:
    if not isinstance(cred, dict):
        raise _fail(path, where, "must be an object")
    unknown = set(cred) - _CREDENTIAL_FIELDS
    if unknown:
        raise _fail(path, where, f"unknown field(s) {sorted(unknown)}")
    for name in ("id", "description", "kind"):
        if not isinstance(cred.get(name), str) or not cred[name].strip():
            raise _fail(path, where, f"'{name}' is required and must be a non-empty string")
    if cred["kind"] not in KINDS:
        raise _fail(path, where, f"kind {cred['kind']!r} is not one of {sorted(KINDS)}")
    for name in ("secret", "required"):
        if not isinstance(cred.get(name), bool):
            raise _fail(path, where, f"'{name}' is required and must be true or false")
    if "generic" in cred and not isinstance(cred["generic"], bool):
        raise _fail(path, where, "'generic' must be true or false")
    for name in ("keys", "suffixes", "context_keys"):
        if name in cred:
            _check_keys(_str_list(cred[name], path, f"{where}.{name}"), path, f"{where}.{name}")
    if not cred.get("keys") and not cred.get("suffixes") and not cred.get("context_keys"):
        raise _fail(path, where, "needs keys, suffixes or context_keys (otherwise no env var can ever match it)")
    steps = _str_list(cred.get("instructions"), path, f"{where}.instructions", allow_empty=False)
    if len(steps) > 7:
        raise _fail(path, where, f"has {len(steps)} instruction steps; keep it to at most 7")
    for name in ("example", "docs_url", "pattern"):
        if name in cred and not isinstance(cred[name], str):
            raise _fail(path, where, f"'{name}' must be a string")
    pattern = cred.get("pattern", "")
    if pattern:
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise _fail(path, where, "pattern must be anchored with ^ and $")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise _fail(path, where, f"pattern does not compile: {exc}") from None
        example = cred.get("example", "")
        if not example:
            raise _fail(path, where, "a credential with a pattern needs an example that matches it")
        if not compiled.search(example):
            raise _fail(path, where, f"example {example!r} does not match its pattern")
        for bad in _str_list(cred.get("counter_examples", []), path, f"{where}.counter_examples"):
            if compiled.search(bad):
                raise _fail(path, where, f"counter-example {bad!r} matches the pattern")
    elif cred.get("counter_examples"):
        raise _fail(path, where, "counter_examples without a pattern")


def _check_file(spec: Any, path: Path, where: str) -> None:
    if not isinstance(spec, dict):
        raise _fail(path, where, "must be an object")
    unknown = set(spec) - _FILE_FIELDS
    if unknown:
        raise _fail(path, where, f"unknown field(s) {sorted(unknown)}")
    for name in ("id", "name", "description", "format"):
        if not isinstance(spec.get(name), str) or not spec[name].strip():
            raise _fail(path, where, f"'{name}' is required and must be a non-empty string")
    if spec["format"] not in FILE_FORMATS:
        raise _fail(path, where, f"format {spec['format']!r} is not one of {sorted(FILE_FORMATS)}")
    if not isinstance(spec.get("required"), bool):
        raise _fail(path, where, "'required' is required and must be true or false")
    _check_keys(_str_list(spec.get("keys", []), path, f"{where}.keys"), path, f"{where}.keys")
    _str_list(spec.get("instructions"), path, f"{where}.instructions", allow_empty=False)
    alternatives = spec.get("required_fields", [])
    if not isinstance(alternatives, list) or not all(isinstance(a, list) and a for a in alternatives):
        raise _fail(path, where, "required_fields must be a list of alternatives, each a non-empty list of paths")
    for alternative in alternatives:
        _str_list(alternative, path, f"{where}.required_fields")
    if alternatives and spec["format"] != "json":
        raise _fail(path, where, "required_fields only apply to json files")
    if not isinstance(spec.get("field_values", {}), dict):
        raise _fail(path, where, "field_values must be an object of path -> expected value")


def _substitute(value: Any, variables: dict[str, str], path: Path, where: str) -> Any:
    if isinstance(value, str) and "${" in value:
        try:
            return Template(value).substitute(variables)
        except (KeyError, ValueError) as exc:
            raise _fail(path, where, f"unknown or malformed ${{variable}} {exc}") from None
    if isinstance(value, list):
        return [_substitute(v, variables, path, where) for v in value]
    return value


def _resolve(service_id: str, services: dict, path: Path, seen: tuple = ()) -> tuple[list, list, dict, list, str]:
    """(credentials, files, vars, env_prefixes, docs_url) of a service after applying `extends`, each item tagged
    with the service that defined it (its origin)."""
    entry = services[service_id]
    credentials: dict[str, dict] = {}
    files: dict[str, dict] = {}
    variables: dict[str, str] = {}
    prefixes: list[str] = []
    base_id = entry.get("extends")
    if base_id:
        if base_id not in services:
            raise _fail(path, f"services.{service_id}.extends", f"unknown service {base_id!r}")
        if base_id in seen:
            raise _fail(path, f"services.{service_id}.extends", "circular extends")
        base_creds, base_files, variables, prefixes, _ = _resolve(base_id, services, path, seen + (service_id,))
        credentials = {c["id"]: c for c in base_creds}
        files = {f["id"]: f for f in base_files}
        variables = dict(variables)
        prefixes = list(prefixes)
    for cred in entry.get("credentials", []):
        credentials[cred["id"]] = {**cred, "_origin": service_id}
    for spec in entry.get("files", []):
        files[spec["id"]] = {**spec, "_origin": service_id}
    variables.update(entry.get("vars", {}))
    prefixes = list(dict.fromkeys(entry.get("match", {}).get("env_prefixes", []) + prefixes))
    return list(credentials.values()), list(files.values()), variables, prefixes, entry.get("docs_url", "")


def load_credinfo(path: Path | str) -> Credinfo:
    """Read and validate a credinfo file (uncached; `credinfo()` is the cached one for the product's file)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredinfoError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise CredinfoError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise _fail(path, "top level", "must be an object")
    unknown = set(raw) - {"version", "description", "generic_keys", "services"}
    if unknown:
        raise _fail(path, "top level", f"unknown field(s) {sorted(unknown)}")
    if raw.get("version") != SUPPORTED_VERSION:
        raise _fail(path, "version", f"must be {SUPPORTED_VERSION}, got {raw.get('version')!r}")
    generic_keys = _check_keys(_str_list(raw.get("generic_keys", []), path, "generic_keys"), path, "generic_keys")
    services_raw = raw.get("services")
    if not isinstance(services_raw, dict) or not services_raw:
        raise _fail(path, "services", "must be a non-empty object of service id -> service")

    for service_id, entry in services_raw.items():
        where = f"services.{service_id}"
        if not _SERVICE_ID.match(service_id):
            raise _fail(path, where, "service ids are lower_snake_case")
        if not isinstance(entry, dict):
            raise _fail(path, where, "must be an object")
        unknown = set(entry) - _SERVICE_FIELDS
        if unknown:
            raise _fail(path, where, f"unknown field(s) {sorted(unknown)}")
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise _fail(path, where, "'name' is required")
        if not isinstance(entry.get("docs_url", ""), str):
            raise _fail(path, where, "'docs_url' must be a string")
        match = entry.get("match")
        if not isinstance(match, dict) or set(match) - {"keywords", "substrings", "env_prefixes"}:
            raise _fail(path, f"{where}.match", "must be an object with keywords, substrings, env_prefixes")
        for name in ("keywords", "substrings", "env_prefixes"):
            _str_list(match.get(name, []), path, f"{where}.match.{name}")
        if not match.get("keywords") and not match.get("substrings"):
            raise _fail(path, f"{where}.match", "needs at least one keyword or substring")
        for prefix in match.get("env_prefixes", []):
            if not re.match(r"^[A-Z0-9][A-Z0-9_]*_$", prefix):
                raise _fail(path, f"{where}.match.env_prefixes", f"{prefix!r} must look like SLACK_")
        if not isinstance(entry.get("vars", {}), dict) or not all(
            isinstance(v, str) for v in entry.get("vars", {}).values()
        ):
            raise _fail(path, f"{where}.vars", "must be an object of name -> text")
        credentials = entry.get("credentials", [])
        files = entry.get("files", [])
        if not isinstance(credentials, list) or not isinstance(files, list):
            raise _fail(path, where, "credentials and files must be lists")
        if not credentials and not files and not entry.get("extends"):
            raise _fail(path, where, "has no credentials or files")
        ids: set[str] = set()
        for index, cred in enumerate(credentials):
            cwhere = f"{where}.credentials[{index}]" + (f" ({cred.get('id')})" if isinstance(cred, dict) else "")
            _check_credential(cred, path, cwhere)
            if cred["id"] in ids:
                raise _fail(path, cwhere, "duplicate credential id")
            ids.add(cred["id"])
        for index, spec in enumerate(files):
            _check_file(spec, path, f"{where}.files[{index}]" + (f" ({spec.get('id')})" if isinstance(spec, dict) else ""))

    services: dict[str, _Service] = {}
    by_key: dict[str, list[tuple[_Service, dict]]] = {}
    for order, (service_id, entry) in enumerate(services_raw.items()):
        where = f"services.{service_id}"
        raw_creds, raw_files, variables, prefixes, docs_url = _resolve(service_id, services_raw, path)
        match = entry["match"]
        service = _Service(
            id=service_id,
            name=entry["name"],
            docs_url=docs_url,
            keywords=[tuple(_tokens(k)) for k in match.get("keywords", [])],
            substrings=[s.lower() for s in match.get("substrings", [])],
            order=order,
        )
        for raw_cred in raw_creds:
            cwhere = f"{where}.credentials ({raw_cred['id']})"
            cred = {k: _substitute(v, variables, path, cwhere) for k, v in raw_cred.items()}
            cred.setdefault("docs_url", docs_url or services_raw[cred["_origin"]].get("docs_url", ""))
            service.credentials.append(cred)
            exact = set(cred.get("keys", [])) | {p + s for p in prefixes for s in cred.get("suffixes", [])}
            context = set(cred.get("context_keys", [])) | (set(generic_keys) if cred.get("generic") else set())
            for key in exact:
                if key in service.keys and service.keys[key]["id"] != cred["id"]:
                    raise _fail(path, where, f"env var {key} belongs to two credentials ({service.keys[key]['id']}, {cred['id']})")
                service.keys[key] = cred
                by_key.setdefault(key, []).append((service, cred))
            for key in context - exact:
                if key in service.context_keys and service.context_keys[key]["id"] != cred["id"]:
                    raise _fail(path, where, f"context key {key} belongs to two credentials")
                service.context_keys[key] = cred
        for raw_file in raw_files:
            service.files.append({k: _substitute(v, variables, path, f"{where}.files") for k, v in raw_file.items()})
        services[service_id] = service
    return Credinfo(version=raw["version"], services=services, by_key=by_key, raw=raw)


def credinfo_path() -> Path:
    return Path(settings.BASE_DIR) / "config" / "credinfo.json"


@lru_cache(maxsize=1)
def credinfo() -> Credinfo:
    """The product's credinfo, loaded and validated once per process."""
    return load_credinfo(credinfo_path())


# ---------------------------------------------------------------- matching


@lru_cache(maxsize=8192)
def _fitting_services(*, server_name: str, slug: str, repository_url: str) -> tuple[_Service, ...]:
    """Services whose match rules fit the server, best first: a hit in the name/slug beats one only in the
    repository path, a longer phrase ("google calendar") beats a shorter one ("google"), then file order.

    Kept per process, like credinfo() it reads: every phrase of every service is tried against the server, for
    each credential of each chosen server, at every chat turn (13 ms of a credentials turn before)."""
    primary_text = f"{_HOSTING_NAMESPACE.sub('', server_name)} {_HOSTING_NAMESPACE.sub('', slug)}".lower()
    primary_tokens = _tokens(primary_text)
    repo_text = _repository_path(repository_url).lower()
    repo_tokens = _tokens(repo_text)
    ranked: list[tuple[tuple, _Service]] = []
    for service in credinfo().services.values():
        best: tuple[int, int] | None = None
        for in_primary, tokens, text in ((1, primary_tokens, primary_text), (0, repo_tokens, repo_text)):
            for phrase in service.keywords:
                if phrase and _contains_phrase(tokens, phrase):
                    best = max(best or (0, 0), (in_primary, len(phrase)))
            for sub in service.substrings:
                if sub in text:
                    best = max(best or (0, 0), (in_primary, 1))
        if best:
            ranked.append(((-best[0], -best[1], service.order), service))
    return tuple(service for _, service in sorted(ranked, key=lambda item: item[0]))


def _contains_phrase(tokens: list[str], phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    return any(tuple(tokens[i : i + size]) == phrase for i in range(len(tokens) - size + 1))


def _public(service: _Service, cred: dict) -> dict:
    return {
        "service": service.id,
        "service_name": service.name,
        "description": cred["description"],
        "instructions": list(cred["instructions"]),
        "kind": cred["kind"],
        "secret": cred["secret"],
        "required": cred["required"],
        "pattern": cred.get("pattern", ""),
        "example": cred.get("example", ""),
        "docs_url": cred.get("docs_url", ""),
    }


def match_credential(*, key: str, server_name: str = "", repository_url: str = "", slug: str = "") -> dict | None:
    """Curated instructions for credential `key` of a server, or None when we know nothing reliable.

    1. Within the services the server fits (by name, slug, repository), the key's exact name, then the generic
       names (API_KEY, TOKEN, ...) that only mean something on that service's server.
    2. Otherwise the key's name alone, when it points at one service (SLACK_BOT_TOKEN) or at one shared recipe
       (GOOGLE_CLIENT_ID: the Google OAuth client, whichever Google product the server wraps).
    """
    normalised = normalise_key(key)
    if not normalised:
        return None
    info = credinfo()
    fitting = _fitting_services(server_name=server_name, slug=slug, repository_url=repository_url)
    for service in fitting:
        if normalised in service.keys:
            return _public(service, service.keys[normalised])
    for service in fitting:
        if normalised in service.context_keys:
            return _public(service, service.context_keys[normalised])
    candidates = info.by_key.get(normalised, [])
    origins = {(cred["_origin"], cred["id"]) for _, cred in candidates}
    if len(origins) != 1:
        return None
    origin_id, cred_id = origins.pop()
    origin = info.services[origin_id]
    if normalised in origin.keys:
        return _public(origin, origin.keys[normalised])
    if len({service.id for service, _ in candidates}) == 1:
        return _public(*candidates[0])
    # A key only derived services know (GMAIL_CLIENT_ID under several Google products): the shared recipe.
    return _public(origin, next(c for c in origin.credentials if c["id"] == cred_id))


def service_files(*, server_name: str = "", repository_url: str = "", slug: str = "") -> list[dict]:
    """Files (OAuth client JSON, service-account key, ...) the services a server fits ask for; one entry per
    distinct recipe, attributed to the most specific service."""
    result: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for service in _fitting_services(server_name=server_name, slug=slug, repository_url=repository_url):
        for spec in service.files:
            marker = (spec["_origin"], spec["id"])
            if marker in seen:
                continue
            seen.add(marker)
            result.append(
                {
                    "service": service.id,
                    "service_name": service.name,
                    "id": spec["id"],
                    "name": spec["name"],
                    "description": spec["description"],
                    "keys": list(spec.get("keys", [])),
                    "format": spec["format"],
                    "filename": spec.get("filename", ""),
                    "required": spec["required"],
                    "required_fields": [list(a) for a in spec.get("required_fields", [])],
                    "field_values": dict(spec.get("field_values", {})),
                    "instructions": list(spec["instructions"]),
                    "docs_url": spec.get("docs_url") or service.docs_url,
                }
            )
    return result


def credinfo_services() -> dict:
    """Every service after `extends` and `${vars}` are applied: {id: {name, docs_url, credentials, files}}."""
    strip = lambda item: {k: v for k, v in item.items() if not k.startswith("_")}  # noqa: E731
    return {
        service.id: {
            "name": service.name,
            "docs_url": service.docs_url,
            "credentials": [strip(c) for c in service.credentials],
            "files": [strip(f) for f in service.files],
        }
        for service in credinfo().services.values()
    }


def file_problems(spec: dict, content: dict | bytes | str) -> list[str]:
    """What is wrong with an uploaded file against a `service_files()` entry (empty list: looks right).
    Only structure is checked; values are never echoed, as they are secrets."""
    if spec["format"] != "json":
        return [] if content else ["the file is empty"]
    data = content
    if isinstance(content, (bytes, str)):
        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            return ["the file is not valid JSON"]
    if not isinstance(data, dict):
        return ["the file must contain a JSON object"]

    def lookup(dotted: str) -> Any:
        node: Any = data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    problems = []
    alternatives = spec.get("required_fields", [])
    if alternatives and not any(all(lookup(p) not in (None, "") for p in alt) for alt in alternatives):
        wanted = " or ".join("(" + ", ".join(alt) + ")" for alt in alternatives)
        problems.append(f"missing fields: needs {wanted}")
    for dotted, expected in spec.get("field_values", {}).items():
        if lookup(dotted) != expected:
            problems.append(f"field {dotted} must be {expected!r}")
    return problems


# ---------------------------------------------------------------- what the catalogue's own texts are worth

# Source texts that stand in for a value instead of describing it: your_account_sid, <api-key>, api_key_here,
# changeme, ${TOKEN}, xxxx. Shown to a user they say nothing, or worse, look like the value to send.
_PLACEHOLDER = re.compile(
    r"""^(?:
        <[^<>]+>                                   # <your-api-key>
      | \[[^\[\]]+\]                               # [API_KEY]
      | \{\{?[^{}]+\}\}?  | \$\{?[A-Za-z_][\w]*\}?  # {token}, {{token}}, ${TOKEN}, $TOKEN
      | (?:your|my|insert|enter|put|paste|add)[-_.][\w.-]*  # your_account_sid, YOUR-API-KEY, insert_key_here
      | (?:your|my)\s+[\w-]+(?:\s+[\w-]+)?\s+here  # your api key here
      | [\w.-]*[-_\s]here                          # api_key_here, token-here
      | change[-_]?me | replace[-_]?me | placeholder | todo | tbd | n/?a | none | null | dummy | sample
      | x{3,}[\w-]* | [\w-]*x{4,} | \*{3,} | \.{3} | …
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_PLACEHOLDER_PATH = re.compile(r"/path/to/|/your[-_]|\byour[-_][\w-]+\.(?:json|pem|key|onnx|ya?ml)\b", re.IGNORECASE)


def looks_like_placeholder(text: str | None) -> bool:
    """Is this source text a stand-in for a value (your_api_key, <token>, key_here, changeme) rather than
    words that describe it or a real default?"""
    text = (text or "").strip().strip("\"'`")
    if not text:
        return False
    return bool(_PLACEHOLDER.match(text) or _PLACEHOLDER_PATH.search(text))


# Environment settings that tune how a server runs (mode, ports, logging, transport, flags, timeouts): the server
# has its own default for each, so a source flagging one "required" is wrong and the user must not be asked.
_CONFIGURATION_KEYS = {
    "NODE_ENV", "ENV", "ENVIRONMENT", "APP_ENV", "PYTHON_ENV", "RUST_LOG", "RUST_BACKTRACE", "NODE_OPTIONS",
    "NODE_PATH", "PATH", "PYTHONPATH", "PYTHONUNBUFFERED", "TZ", "LANG", "NO_COLOR", "FORCE_COLOR", "CI",
    "DEBUG", "VERBOSE", "QUIET", "TRANSPORT", "TRANSPORT_TYPE", "SERVER_NAME", "SERVER_VERSION", "HTTP_PROXY",
    "HTTPS_PROXY", "NO_PROXY", "TIMEOUT",
}
_CONFIGURATION_PATTERNS = re.compile(
    r"""(?:^|_)(?:PORT|LOG|LOGLEVEL|LOGGING)$              # PORT, MYSQL_PORT, MCP_LOG
      | (?:^|_)LOG_(?:LEVEL|FORMAT|FILE|DIR|PATH)$       # LOG_LEVEL, APP_LOG_FILE
      | (?:^|_)(?:DEBUG|VERBOSE)(?:_[A-Z0-9]+)?$ | ^DEBUG_  # DEBUG, MCP_DEBUG, DEBUG_MODE
      | ^(?:ENABLE|DISABLE|FEATURE)_ | _(?:ENABLED|DISABLED)$ | (?:^|_)FEATURE_FLAGS?$
      | _TIMEOUT(?:_MS|_SECONDS|_SEC|_S)?$ | _MAX_RETRIES$ | _RETRY_(?:COUNT|DELAY)$
      | ^MCP_(?:TRANSPORT(?:_TYPE)?|MODE|SERVER_(?:NAME|HOST|VERSION)|HOST|LOG_LEVEL)$
    """,
    re.VERBOSE,
)


def is_configuration_setting(key: str) -> bool:
    """Does the name say this is how the server runs (NODE_ENV, a port, a log level, a feature flag, a debug
    switch, a timeout), not an account the user must hold? Such a setting is never a required credential."""
    normalised = normalise_key(key)
    return normalised in _CONFIGURATION_KEYS or bool(_CONFIGURATION_PATTERNS.search(normalised))


_KIND_STEPS = {
    "api_key": "Sign in to {service} and create an API key (usually under account settings, API keys or "
               "developer settings); copy it when it is shown.",
    "token": "Sign in to {service} and create an access token (usually under account or developer settings) "
             "with the permissions the workflow needs; copy it when it is shown.",
    "oauth_client": "Register an OAuth application in {service}'s developer console and copy its client "
                    "credentials.",
    "password": "Use the password of the {service} account the server should act as (an app password if the "
                "account has one for third-party access).",
    "url": "Use the address of your instance or API endpoint at {service}, as shown in your account or server "
           "settings.",
    "setting": "Find your {what} in your account or dashboard at {service}.",
    "file_path": "Download the file {service} gives you for API access and send it as a file.",
}
_NAME_NOISE = re.compile(r"\b(?:mcp|server|servers|model context protocol|integration|the|api)\b", re.IGNORECASE)


def service_label(*, server_name: str, repository_url: str = "", slug: str = "") -> str:
    """What a user would call the service a server wraps: the curated service's name when one fits
    (Gmail, Twilio), otherwise the server's name without 'MCP server' ("the SMS service")."""
    fitting = _fitting_services(server_name=server_name, slug=slug, repository_url=repository_url)
    if fitting:
        return fitting[0].name
    label = " ".join(_NAME_NOISE.sub(" ", server_name.replace("-", " ").replace("_", " ")).split())
    return f"the {label} service" if label else server_name


def generic_credential_text(*, key: str, kind: str, location: str, server_name: str, repository_url: str = "",
                            homepage: str = "", slug: str = "") -> tuple[str, list[str]]:
    """(description, instructions) for a credential the catalogue describes only with a placeholder, built
    from what it does know: the service, the kind of value, where it goes and where the server is documented."""
    service = service_label(server_name=server_name, repository_url=repository_url, slug=slug)
    what = " ".join(key.replace("-", "_").lower().split("_")).replace(" id", " ID").replace(" sid", " SID") \
        .replace(" url", " URL").strip()
    owner = service.removeprefix("the ").removesuffix(" service")
    description = f"Your {owner} {what}" if owner.lower() not in what.lower() else f"Your {what}"
    steps = [_KIND_STEPS.get(kind, _KIND_STEPS["setting"]).format(service=service, what=f"{owner} {what}")]
    docs = homepage or repository_url
    if docs:
        steps.append(f"{server_name}'s documentation says where it comes from: {docs}")
    where = {"header": "HTTP header", "env": "environment variable", "arg": "command-line argument"}.get(
        location, location)
    steps.append(f"Send it as {key} ({where}) for {server_name}.")
    return description, steps
