"""The normalised record every catalogue importer yields, and the normalisation shared by all of them.

Each source (official registry, toolsdk, Docker catalog, awesome list, our native file, the live registry API)
has its own shape; importers turn an entry into a `ServerRecord` so that merging, hashing and writing are
source-independent. Everything here is pure (no database), so `build_default_catalogue` can use it offline.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from django.utils.text import slugify

# Field limits: model column sizes (a longer value would abort the whole import transaction) and sane caps.
MAX_DESCRIPTION = 10_000  # a 10 MB description is an error in the source, not content worth indexing
MAX_NAME = 300
MAX_SLUG = 180  # leaves room for a "-NN" collision suffix under the 200-character column
MAX_URL = 500
MAX_TOOL_DESCRIPTION = 10_000
MAX_SCHEMA_BYTES = 64_000
MAX_TOOLS = 500
MAX_CREDENTIALS = 100

# Hosts whose URLs name a source repository as /owner/repo (GitLab-like hosts allow nested groups).
_FORGES = {"github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "gitea.com", "git.sr.ht", "gitee.com"}
_NESTED_GROUP_FORGES = {"gitlab.com"}
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1", "example.com", "www.example.com"}
_NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$", re.I)
_PYPI_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
# "Official Notion MCP server", "Azure Kubernetes Service (AKS) official MCP server".
OFFICIAL_WORDING = re.compile(r"\bofficial\b[^.]{0,60}\b(mcp|server)\b", re.I)
_TEMPLATE_VAR = re.compile(r"\{\{\s*(?:[\w.-]+\.)?([\w-]+)\s*(?:\|[^}]*)?\}\}|\$\{(\w+)\}|\$(\w+)|\{(\w+)\}")


@dataclass
class Problem:
    """A record that was skipped (with the reason) or imported with a warning (e.g. a truncated description)."""

    location: str
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        return f"{'skipped' if self.skipped else 'warning'} {self.location}: {self.reason}"


class RecordError(ValueError):
    """Raised by an importer for one malformed entry: the entry is skipped and reported, the rest imported."""


@dataclass
class ToolRecord:
    name: str
    description: str = ""
    input_schema: dict | None = None
    source: str = ""  # set when merged: which catalogue this tool came from


@dataclass
class CredentialRecord:
    """A credential or setting. `required`/`secret` are None when the source does not say (absence != false)."""

    key: str
    location: str = "env"  # env | header | file | arg
    description: str = ""
    required: bool | None = None
    secret: bool | None = None
    format: str = ""
    default: str = ""
    choices: list[str] = field(default_factory=list)
    example: str = ""
    kind: str = ""  # empty: guessed from the key when merged
    service: str = ""
    instructions: list[str] = field(default_factory=list)
    pattern: str = ""
    source: str = ""  # set when merged


@dataclass
class LaunchRecord:
    """How to start the server. `args`, `env` and `headers` may hold "${KEY}" templates naming credentials."""

    kind: str  # npm | pypi | oci | remote | other
    identifier: str = ""
    version: str = ""
    transport: str = "stdio"
    url: str = ""
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # Env vars the server reads its HTTP proxy from instead of the standard ones (the sandbox sets them).
    proxy_env: list[str] = field(default_factory=list)
    source: str = ""  # set when merged


@dataclass
class SourceRef:
    """Provenance: one source's contribution to a merged server."""

    source: str
    source_id: str
    location: str = ""


@dataclass
class ServerRecord:
    """One server as one source describes it, normalised. `signals` feed the popularity score (see merge.py)."""

    source: str
    source_id: str
    location: str
    name: str
    slug: str = ""
    description: str = ""
    repository_url: str = ""
    repository_subfolder: str = ""
    homepage: str = ""
    categories: list[str] = field(default_factory=list)
    license: str = ""
    status: str = "active"  # active | deprecated | hidden
    official: bool = False
    launch: list[LaunchRecord] = field(default_factory=list)
    tools: list[ToolRecord] = field(default_factory=list)
    credentials: list[CredentialRecord] = field(default_factory=list)
    signals: dict[str, Any] = field(default_factory=dict)
    # Identity keys the source states beyond those derived from URLs and packages (e.g. "mcpreg:<name>").
    extra_keys: list[str] = field(default_factory=list)
    # Native records only: the original sources merged into this one.
    provenance: list[SourceRef] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict. Shallow on purpose (dataclasses.asdict deep-copies every tool schema and was
        the slowest step of a catalogue build)."""
        data = dict(self.__dict__)
        for name in ("launch", "tools", "credentials", "provenance"):
            data[name] = [dict(item.__dict__) for item in data[name]]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["launch"] = [_build(LaunchRecord, x) for x in data.get("launch") or []]
        values["tools"] = [_build(ToolRecord, x) for x in data.get("tools") or []]
        values["credentials"] = [_build(CredentialRecord, x) for x in data.get("credentials") or []]
        values["provenance"] = [_build(SourceRef, x) for x in data.get("provenance") or []]
        return cls(**values)

    def content_hash(self, salt: str = "") -> str:
        """Hash of everything but the location, so a record that only moved in its file counts as unchanged."""
        payload = self.to_dict()
        payload.pop("location", None)
        # A recipe naming no proxy variables hashes as before they existed: unchanged records stay unchanged.
        payload["launch"] = [{k: v for k, v in x.items() if k != "proxy_env" or v} for x in payload["launch"]]
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256((salt + text).encode()).hexdigest()

    def merge_keys(self) -> list[str]:
        """Identity keys, strongest first. Two records sharing one (unambiguously) describe the same server."""
        keys = list(self.extra_keys)
        for recipe in self.launch:
            if recipe.kind in ("npm", "pypi", "oci") and recipe.identifier:
                keys.append(package_key(recipe.kind, recipe.identifier))
        remotes = [k for k in (remote_key(r.url) for r in self.launch if r.kind == "remote" and r.url) if k]
        # An entry bundling many endpoints (one per product of a vendor) is not identified by any one of them.
        if len({re.sub(r"(/mcp|/sse)+$", "", k) for k in remotes}) <= 2:
            keys += remotes
        if self.repository_url:
            if self.repository_subfolder:
                keys.append(f"repo:{self.repository_url}#{self.repository_subfolder}")
            keys.append(f"repo:{self.repository_url}")
        return list(dict.fromkeys(k[:600] for k in keys))


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


# --- text ---------------------------------------------------------------------------------------------------


def strip_nul(value: Any) -> tuple[Any, bool]:
    """Remove NUL characters (PostgreSQL text and jsonb reject them) from any JSON-like value."""
    if isinstance(value, str):
        return (value.replace("\x00", ""), True) if "\x00" in value else (value, False)
    if isinstance(value, list):
        found = False
        out = []
        for item in value:
            clean, hit = strip_nul(item)
            out.append(clean)
            found |= hit
        return out, found
    if isinstance(value, dict):
        found = False
        result = {}
        for key, item in value.items():
            clean_key, hit_key = strip_nul(key)
            clean, hit = strip_nul(item)
            result[clean_key] = clean
            found |= hit or hit_key
        return result, found
    return value, False


def text(value: Any, limit: int = MAX_NAME) -> str:
    """A stripped string of at most `limit` characters from whatever the source holds (None, numbers, lists...).
    NUL bytes are left for finish() to remove and report."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()[:limit]


def long_text(value: Any, *, limit: int, what: str, warnings: list[str]) -> str:
    """Like text() for descriptions: keeps newlines, truncates to `limit` and says so in `warnings`."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    result = str(value).strip()
    if len(result) > limit:
        warnings.append(f"{what} truncated from {len(result):,} to {limit:,} characters")
        result = result[:limit].rstrip()
    return result


def optional_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    return None


def make_slug(value: str) -> str:
    value = re.sub(r"[@/._:]+", "-", value or "")
    return slugify(value)[:MAX_SLUG].strip("-")


def normalise_category(value: str) -> str:
    """'Finance & Fintech', 'finance--fintech', 'Finance_Fintech' -> 'finance-fintech'."""
    value = re.sub(r"[^a-z0-9]+", "-", (value or "").lower().replace("&", " ")).strip("-")
    return CATEGORY_ALIASES.get(value, value)[:100]


# Category names from the Docker catalog and the awesome list's anchors, mapped to the toolsdk taxonomy
# (which the awesome list shares) so one category filter finds servers from every source.
CATEGORY_ALIASES = {
    "search": "search-data-extraction",
    "support-and-service-management": "support-service-management",
    "travel-and-transportation": "travel-transportation",
    "database": "databases",
    "finance": "finance-fintech",
    "fintech": "finance-fintech",
    "payments": "finance-fintech",
    "bio": "biology-medicine-and-bioinformatics",
    "rag": "rag-platforms",
    "web-scraping": "search-data-extraction",
    "devops": "developer-tools",
    "development": "developer-tools",
    "code": "developer-tools",
    "productivity": "workplace-and-productivity",
    "uncategorized": "",
}


# --- URLs ---------------------------------------------------------------------------------------------------


def normalise_repository_url(url: str) -> tuple[str, str]:
    """('https://github.com/Owner/Repo.git/tree/main/src/x', ...) -> ('https://github.com/owner/repo', 'src/x').

    Returns ('', '') for anything that is not a repository on a known forge (docs sites, npm pages): those are
    homepages, not identities. The subfolder (from /tree/<branch>/<path> or /blob/...) tells servers of one
    monorepo apart.
    """
    raw = text(url, 2000)
    if not raw:
        return "", ""
    raw = re.sub(r"^git\+", "", raw)
    ssh = re.match(r"^git@([^:]+):(.+)$", raw)
    if ssh:
        raw = f"https://{ssh.group(1)}/{ssh.group(2)}"
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
    except ValueError:
        return "", ""
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    if host not in _FORGES:
        return "", ""
    segments = [s for s in parts.path.split("/") if s]
    if host in _NESTED_GROUP_FORGES and "-" in segments:
        cut = segments.index("-")
        repo_segments, rest = segments[:cut], segments[cut + 1 :]
    else:
        repo_segments, rest = segments[:2], segments[2:]
    if len(repo_segments) < 2:
        return "", ""
    repo_segments[-1] = re.sub(r"\.git$", "", repo_segments[-1])
    repo = f"https://{host}/" + "/".join(s.lower() for s in repo_segments)
    subfolder = ""
    if len(rest) >= 3 and rest[0] in ("tree", "blob", "src"):
        path = rest[2:]
        if rest[0] == "blob" or (path and path[-1].lower().endswith((".md", ".json", ".py", ".ts"))):
            path = path[:-1]
        subfolder = "/".join(path).lower().strip("/")
    return repo[:MAX_URL], subfolder[:200]


def normalise_http_url(url: Any) -> str:
    """An http(s) URL or ''. Used for homepages; keeps case of the path (it can matter) but not of the host."""
    raw = text(url, 2000)
    if not raw or " " in raw:
        return ""
    if "://" not in raw:
        return ""
    try:
        parts = urlsplit(raw)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    result = raw if len(raw) <= MAX_URL else ""
    return result


def remote_key(url: str) -> str:
    """Identity key of a hosted endpoint; '' for local or placeholder endpoints that identify nothing."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if not host or host in _LOCAL_HOSTS or "{" in host:
        return ""
    path = parts.path.rstrip("/")
    return f"remote:{host}{path}"


def pypi_name(identifier: str) -> str:
    """A PyPI project name as the index compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", identifier.strip().lower())


def package_key(kind: str, identifier: str) -> str:
    ident = identifier.strip().lower()
    if kind == "pypi":
        ident = pypi_name(ident)
    elif kind == "oci":
        ident = re.sub(r"^(docker\.io/|index\.docker\.io/)", "", ident)
        ident = re.sub(r"^library/", "", ident)
        ident = re.sub(r"(@sha256:[0-9a-f]+|:[\w][\w.-]*)$", "", ident)
    return f"pkg:{kind}:{ident}"


# --- credentials --------------------------------------------------------------------------------------------

_KIND_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"(CLIENT_ID|CLIENT_SECRET|CONSUMER_KEY|CONSUMER_SECRET)$"), "oauth_client"),
    (re.compile(r"(PASSWORD|PASSWD|PASSPHRASE|_PASS|^PASS)$"), "password"),
    (re.compile(r"(API_KEY|APIKEY|ACCESS_KEY|SECRET_KEY|_KEY)$"), "api_key"),
    (re.compile(r"(TOKEN|_PAT|BEARER|AUTHORIZATION|AUTHENTICATION|COOKIE|SESSION)$"), "token"),
    (re.compile(r"(SECRET)$"), "api_key"),
    (re.compile(r"(_PATH|_FILE|_DIR|_DIRECTORY|_FOLDER|KUBECONFIG)$"), "file_path"),
    (re.compile(r"(_URL|_URI|_HOST|_ENDPOINT|_BASE|_DSN|HOSTNAME|DATABASE_URL|CONNECTION_STRING)$"), "url"),
]


def guess_kind(key: str) -> str:
    """Kind from the variable's name: *_TOKEN -> token, *_API_KEY/*_KEY -> api_key, *CLIENT_ID/SECRET ->
    oauth_client, *PASSWORD -> password, *_PATH/_FILE -> file_path, *_URL/_HOST -> url, else setting."""
    name = re.sub(r"[^A-Z0-9]+", "_", (key or "").upper()).strip("_")
    if name in ("KEY", "API_KEY", "X_API_KEY", "APIKEY"):
        return "api_key"
    for pattern, kind in _KIND_RULES:
        if pattern.search(name):
            return kind
    return "setting"


SECRET_KINDS = {"api_key", "token", "oauth_client", "password"}


def is_placeholder(description: str, key: str) -> bool:
    """True for descriptions that say nothing: empty, the key itself, or 'YOUR_AWS_REGION'-style values."""
    value = (description or "").strip()
    if not value:
        return True
    if value.upper() == key.upper():
        return True
    return bool(re.fullmatch(r"[<{\[]?[A-Z0-9_\-.]+[>}\]]?", value)) and " " not in value


def to_template(value: str) -> str:
    """'{{server.param}}', '$VAR', '{var}' (as sources write them) -> '${param}' / '${VAR}' / '${var}'."""

    def repl(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        return "${" + name + "}"

    return _TEMPLATE_VAR.sub(repl, value)


def template_vars(value: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in _TEMPLATE_VAR.finditer(value or "")]


# --- launch recipes -----------------------------------------------------------------------------------------


def valid_npm_name(name: str) -> bool:
    return bool(_NPM_NAME.match(name or "")) and len(name) <= 214


def valid_pypi_name(name: str) -> bool:
    return bool(_PYPI_NAME.match(name or ""))


def npm_recipe(identifier: str, version: str = "", *, runtime_args: list[str] | None = None,
               package_args: list[str] | None = None, bin_name: str = "", transport: str = "stdio",
               url: str = "") -> LaunchRecord:
    """`npx -y pkg@ver args` (or `npx -y --package pkg@ver bin args` when the package's binary has another name)."""
    spec = f"{identifier}@{version}" if version else identifier
    launcher = list(runtime_args) if runtime_args else ["-y"]
    args = [*launcher, "--package", spec, bin_name] if bin_name else [*launcher, spec]
    return LaunchRecord(kind="npm", identifier=identifier, version=version, transport=transport, url=url,
                        command="npx", args=[*args, *(package_args or [])])


def pypi_recipe(identifier: str, version: str = "", *, runtime_args: list[str] | None = None,
                package_args: list[str] | None = None, bin_name: str = "", transport: str = "stdio",
                url: str = "") -> LaunchRecord:
    """`uvx pkg==ver args` (or `uvx --from pkg==ver bin args`)."""
    spec = f"{identifier}=={version}" if version else identifier
    launcher = list(runtime_args or [])
    args = [*launcher, "--from", spec, bin_name] if bin_name else [*launcher, spec]
    return LaunchRecord(kind="pypi", identifier=identifier, version=version, transport=transport, url=url,
                        command="uvx", args=[*args, *(package_args or [])])


def oci_recipe(image: str, version: str = "", *, env_keys: list[str] | None = None,
               runtime_args: list[str] | None = None, package_args: list[str] | None = None,
               env: dict[str, str] | None = None, transport: str = "stdio", url: str = "") -> LaunchRecord:
    """`docker run -i --rm -e KEY ... image:tag args`: `-e KEY` passes each credential through from env."""
    ref = image if (not version or re.search(r"(:[\w][\w.-]*|@sha256:[0-9a-f]+)$", image.split("/")[-1])) \
        else f"{image}:{version}"
    passthrough: list[str] = []
    for key in list(dict.fromkeys([*(env_keys or []), *(env or {})])):
        passthrough += ["-e", key]
    args = ["run", "-i", "--rm", *passthrough, *(runtime_args or []), ref, *(package_args or [])]
    return LaunchRecord(kind="oci", identifier=image, version=version, transport=transport, url=url,
                        command="docker", args=args, env=dict(env or {}))


def remote_recipe(url: str, transport: str, headers: dict[str, str] | None = None) -> LaunchRecord:
    transport = transport if transport in ("sse", "streamable-http") else "streamable-http"
    return LaunchRecord(kind="remote", transport=transport, url=url[:1000], headers=dict(headers or {}))


def clean_schema(schema: Any, location: str, warnings: list[str]) -> dict | None:
    """A tool's JSON schema, or None when absent or unreasonably large (reported)."""
    if not isinstance(schema, dict):
        return None
    size = len(json.dumps(schema, ensure_ascii=False))
    if size > MAX_SCHEMA_BYTES:
        warnings.append(f"input schema of tool at {location} dropped ({size:,} bytes)")
        return None
    return schema


def tools_from(items: Any, *, where: str, warnings: list[str]) -> list[ToolRecord]:
    """Tools from a list of {name, description, inputSchema|input_schema|parameters} or a {name: {...}} map."""
    if isinstance(items, dict):
        items = [dict(v, name=v.get("name") or k) if isinstance(v, dict) else {"name": k} for k, v in items.items()]
    if not isinstance(items, list):
        return []
    tools: dict[str, ToolRecord] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        name = text(item.get("name"), MAX_NAME)
        if not name or name in tools:
            continue
        schema = item.get("inputSchema", item.get("input_schema", item.get("parameters")))
        tools[name] = ToolRecord(
            name=name,
            description=long_text(item.get("description"), limit=MAX_TOOL_DESCRIPTION,
                                  what=f"description of tool {name!r}", warnings=warnings),
            input_schema=clean_schema(schema, f"{where} tool {name!r}", warnings),
        )
        if len(tools) >= MAX_TOOLS:
            warnings.append(f"more than {MAX_TOOLS} tools; the rest ignored")
            break
    return list(tools.values())


def finish(record: ServerRecord, warnings: list[str], problems: list[Problem]) -> ServerRecord:
    """Last step of every importer: strip NUL bytes anywhere in the record and report warnings with its location."""
    if not record.name:
        raise RecordError("no name")
    if not record.source_id:
        raise RecordError("no identifier")
    data = record.to_dict()
    # json escapes NUL as \u0000: a cheap test before walking the whole record.
    if "\\u0000" in json.dumps(data):
        data, had_nul = strip_nul(data)
        if had_nul:
            warnings.append("NUL bytes removed")
            record = ServerRecord.from_dict(data)
    record.categories = [c for c in dict.fromkeys(normalise_category(c) for c in record.categories) if c]
    record.credentials = record.credentials[:MAX_CREDENTIALS]
    for warning in warnings:
        problems.append(Problem(location=record.location, reason=warning, skipped=False))
    return record


class SourceError(Exception):
    """The whole input is unusable (unreadable, not JSON, unknown format): nothing is imported."""


@dataclass
class ImportBatch:
    """What one importer read: the records to import, what it skipped or warned about, and summary notes."""

    source: str
    path: str
    records: list[ServerRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    first_at: dict[str, str] = field(default_factory=dict, repr=False)  # source id -> location of its first record

    @property
    def skipped(self) -> list[Problem]:
        return [p for p in self.problems if p.skipped]

    def add_first(self, record: ServerRecord, location: str, warnings: list[str], *, id_name: str) -> None:
        """Keep the first record of each source id; a later one is skipped, naming where the first was."""
        first = self.first_at.setdefault(record.source_id, location)
        if first != location:
            self.problems.append(Problem(location, f"duplicate {id_name} {record.source_id!r} (first at {first})"))
            return
        self.records.append(finish(record, warnings, self.problems))


def read_json(path, *, max_bytes: int = 200 * 1024 * 1024) -> Any:
    """Parse a JSON file or raise SourceError saying where it is broken."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{path}: {size:,} bytes is larger than the {max_bytes:,}-byte limit")
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
