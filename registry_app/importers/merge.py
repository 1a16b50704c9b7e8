"""Merging: which records describe the same server, and what the merged server looks like.

Both are pure functions of the records, so the database import (services.catalogue_import) and the offline
build of config/servers.json (build_default_catalogue) merge identically.

Identity. A record's keys (ServerRecord.merge_keys, strongest first): registry name, package identifiers,
hosted endpoint URL, repository URL + subfolder, bare repository URL. A record joins an existing server when
one of its keys points at exactly one server, and that server has no record from the same source yet. Keys
that several records of one source share in one import (a monorepo such as awslabs/mcp listing eight
servers) are ambiguous and not used for matching; keys already pointing at several servers are skipped too,
except that a root-level repository listing joins the one server of that repository that more catalogues
list than any other.

Field precedence (why: each source is best at something):
- name: native, docker (curated titles), toolsdk, official, awesome (the link text is "owner/repo").
- description: the longest one (truncated at import to MAX_DESCRIPTION): the official registry caps
  descriptions at 100 characters, toolsdk and docker say more.
- repository / homepage: official registry first (publisher-verified), then the others.
- categories, tools, credentials, launch recipes: union. Tools prefer docker (input schemas), then toolsdk.
  Credential flags (required / secret) come from the official registry, then docker, then the others, and
  are guessed from the key's kind only when no source says; the longest non-placeholder description wins.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence

from registry_app.standing import archived_repository

from .common import (
    SECRET_KINDS,
    CredentialRecord,
    LaunchRecord,
    ServerRecord,
    SourceRef,
    ToolRecord,
    guess_kind,
    is_placeholder,
    package_key,
    remote_key,
)

NAME_ORDER = ("native", "docker", "toolsdk", "official", "registry-api", "awesome")
SLUG_ORDER = ("native", "docker", "official", "registry-api", "toolsdk", "awesome")
URL_ORDER = ("official", "registry-api", "native", "docker", "toolsdk", "awesome")
LICENSE_ORDER = ("native", "toolsdk", "official", "registry-api", "docker", "awesome")
CATEGORY_ORDER = ("native", "toolsdk", "awesome", "docker", "official", "registry-api")
TOOL_ORDER = ("docker", "native", "toolsdk", "official", "registry-api", "awesome")
CREDENTIAL_ORDER = ("official", "registry-api", "docker", "native", "toolsdk", "awesome")
LAUNCH_ORDER = ("official", "registry-api", "native", "docker", "toolsdk", "awesome")
# Preferred launch kinds: local packages with the user's own keys, then hosted endpoints, then containers.
KIND_ORDER = ("npm", "pypi", "remote", "oci", "other")
STATUS_SEVERITY = {"active": 0, "deprecated": 1, "hidden": 2}
# The catalogues counted for "listed in several catalogues" (the live API is the official registry).
CATALOGUES = {"official": "official", "registry-api": "official", "docker": "docker", "toolsdk": "toolsdk",
              "awesome": "awesome"}


def _rank(order: Sequence[str], source: str) -> int:
    return order.index(source) if source in order else len(order)


def _by(order: Sequence[str], records: Iterable[ServerRecord]) -> list[ServerRecord]:
    return sorted(records, key=lambda r: _rank(order, r.source))


def _first(order: Sequence[str], records: Sequence[ServerRecord], attr: str) -> str:
    for record in _by(order, records):
        value = getattr(record, attr)
        if value:
            return value
    return ""


def sources_of(record: ServerRecord) -> set[str]:
    """The original catalogues behind a record: its own source, or for a native record its provenance."""
    names = {ref.source for ref in record.provenance}
    if record.source != "native" or not names:
        names.add(record.source)
    return names


def merge_records(records: Sequence[ServerRecord]) -> ServerRecord:
    """One server from all its sources' records (see the module docstring for the precedence rules)."""
    if not records:
        raise ValueError("nothing to merge")
    merged = ServerRecord(
        source="native",
        source_id=_first(SLUG_ORDER, records, "source_id"),
        location="",
        name=_first(NAME_ORDER, records, "name"),
    )
    merged.slug = _first(SLUG_ORDER, records, "slug")
    merged.description = _longest(r.description for r in _by(NAME_ORDER, records))
    best_repo = next((r for r in _by(URL_ORDER, records) if r.repository_url), None)
    if best_repo:
        merged.repository_url = best_repo.repository_url
        merged.repository_subfolder = best_repo.repository_subfolder
    merged.homepage = _first(URL_ORDER, records, "homepage")
    merged.license = _first(LICENSE_ORDER, records, "license")
    merged.categories = list(dict.fromkeys(c for r in _by(CATEGORY_ORDER, records) for c in r.categories))
    merged.status = max((r.status for r in records), key=lambda s: STATUS_SEVERITY.get(s, 0))
    if merged.status == "active" and archived_repository(merged.repository_url):
        # Archived upstream (modelcontextprotocol/servers-archived): kept for agents that have it, never offered.
        merged.status = "deprecated"
    merged.official = any(r.official for r in records)
    merged.tools = _merge_tools(records)
    merged.credentials = _merge_credentials(records)
    merged.launch = _merge_launch(records)
    merged.signals = _merge_signals(records)
    provenance: list[SourceRef] = []
    for record in records:
        refs = record.provenance if record.source == "native" and record.provenance else [
            SourceRef(record.source, record.source_id, record.location)]
        provenance += [ref for ref in refs if ref not in provenance]
    merged.provenance = provenance
    merged.extra_keys = list(dict.fromkeys(k for r in records for k in r.merge_keys()))
    merged.launch = sorted(merged.launch, key=lambda x: _rank(KIND_ORDER, x.kind))
    for cred in merged.credentials:
        _settle_credential(cred)
    return merged


def _longest(values: Iterable[str]) -> str:
    best = ""
    for value in values:
        if value and len(value) > len(best) and not value.startswith(("http://", "https://")):
            best = value
    return best


def _merge_tools(records: Sequence[ServerRecord]) -> list[ToolRecord]:
    tools: dict[str, ToolRecord] = {}
    for record in _by(TOOL_ORDER, records):
        for tool in record.tools:
            current = tools.get(tool.name)
            if current is None:
                tools[tool.name] = ToolRecord(tool.name, tool.description, tool.input_schema,
                                              tool.source or record.source)
                continue
            current.description = current.description or tool.description
            current.input_schema = current.input_schema or tool.input_schema
    return list(tools.values())


def _merge_credentials(records: Sequence[ServerRecord]) -> list[CredentialRecord]:
    merged: dict[str, CredentialRecord] = {}
    for record in _by(CREDENTIAL_ORDER, records):
        for cred in record.credentials:
            key = cred.key.upper()
            current = merged.get(key)
            if current is None:
                merged[key] = CredentialRecord(**{**cred.__dict__, "choices": list(cred.choices),
                                                  "instructions": list(cred.instructions),
                                                  "source": cred.source or record.source})
                continue
            if current.required is None:
                current.required = cred.required
            if current.secret is None:
                current.secret = cred.secret
            if len(cred.description) > len(current.description) and not is_placeholder(cred.description, cred.key):
                current.description = cred.description
            for attr in ("format", "default", "example", "kind", "service", "pattern"):
                if not getattr(current, attr):
                    setattr(current, attr, getattr(cred, attr))
            current.choices = current.choices or list(cred.choices)
            current.instructions = current.instructions or list(cred.instructions)
    return list(merged.values())


def _settle_credential(cred: CredentialRecord) -> None:
    """Fill what no source said: the kind from the key's name, secret from the kind, required = False."""
    if not cred.kind:
        cred.kind = "file_path" if cred.format == "filepath" else guess_kind(cred.key)
    if cred.secret is None:
        cred.secret = cred.kind in SECRET_KINDS
    if cred.required is None:
        cred.required = False
    if is_placeholder(cred.description, cred.key) and cred.description:
        # "YOUR_AWS_REGION" says what goes there, not what it is: keep it as the example instead.
        cred.example = cred.example or cred.description
        cred.description = ""


def _launch_key(recipe: LaunchRecord) -> str:
    if recipe.kind == "remote":
        return remote_key(recipe.url) or recipe.url
    if recipe.kind in ("npm", "pypi", "oci"):
        return package_key(recipe.kind, recipe.identifier)
    return f"{recipe.kind}:{recipe.identifier}:{recipe.url}"


def _merge_launch(records: Sequence[ServerRecord]) -> list[LaunchRecord]:
    recipes: dict[str, LaunchRecord] = {}
    for record in _by(LAUNCH_ORDER, records):
        for recipe in record.launch:
            key = _launch_key(recipe)
            if key not in recipes:
                recipes[key] = LaunchRecord(**{**recipe.__dict__, "source": recipe.source or record.source})
            else:  # one package, so one program: the proxy variables any source names for it apply
                kept = recipes[key]
                kept.proxy_env = [*kept.proxy_env, *(n for n in recipe.proxy_env if n not in kept.proxy_env)]
    return list(recipes.values())


def _merge_signals(records: Sequence[ServerRecord]) -> dict:
    signals: dict = {}
    for record in records:
        for key, value in record.signals.items():
            if isinstance(value, bool):
                signals[key] = signals.get(key, False) or value
            elif isinstance(value, list):
                signals[key] = sorted(set(signals.get(key, [])) | set(value))
            elif key not in signals:
                signals[key] = value
    return signals


def popularity(record: ServerRecord) -> float:
    """Quality prior in 0..1, so that among 30 Slack servers the official, complete one ranks first.

        0.30  vendor-official (official registry namespace owns the product, Docker "-official", awesome 🎖️)
      + 0.15  listed in the official MCP registry (publisher-verified namespace)
      + 0.15  listed in Docker's catalog (reviewed, built and signed by Docker)
      + 0.10  listed in more catalogues: 0 for one, 0.05 for two, 0.10 for three or more
      + 0.10  has a tool list
      + 0.10  has credential metadata (at least one described credential or setting)
      + 0.05  toolsdk marked it `validated` (its tools were listed by actually starting it)
      + 0.05  has a launch recipe (can be started without reading a README)
    """
    sources = sources_of(record)
    catalogues = {CATALOGUES[s] for s in sources if s in CATALOGUES}
    signals = record.signals
    score = 0.30 * record.official
    score += 0.15 * bool("official" in catalogues or signals.get("official_registry"))
    score += 0.15 * bool("docker" in catalogues or signals.get("docker"))
    score += 0.10 * min(max(len(catalogues) - 1, 0), 2) / 2
    score += 0.10 * bool(record.tools)
    score += 0.10 * any(c.description for c in record.credentials)
    score += 0.05 * bool(signals.get("validated"))
    score += 0.05 * bool(record.launch)
    return round(min(score, 1.0), 4)


class MergePlanner:
    """Assigns records to servers ("clusters": a database id, or any token for a server not yet created)."""

    def __init__(self) -> None:
        self._index: dict[str, set[Hashable]] = defaultdict(set)
        self._sources: dict[Hashable, set[str]] = defaultdict(set)

    def add(self, cluster: Hashable, source: str, keys: Iterable[str]) -> None:
        for key in keys:
            self._index[key].add(cluster)
        self._sources[cluster].add(source)

    def find(self, record: ServerRecord, keys: Sequence[str], ambiguous: set[str]) -> Hashable | None:
        for key in keys:
            if key in ambiguous:
                continue
            clusters = self._index.get(key)
            if not clusters:
                continue
            if len(clusters) == 1:
                (cluster,) = clusters
            elif key.startswith("repo:") and "#" not in key and not record.repository_subfolder:
                # A repository already split over several servers: a root-level listing belongs to the one that
                # several catalogues already agree on (github/github-mcp-server: official + docker), if one does.
                weights = sorted(((len(self._sources[c]), c) for c in clusters), key=lambda x: -x[0])
                if weights[0][0] <= weights[1][0]:
                    continue
                cluster = weights[0][1]
            else:
                continue
            if record.source in self._sources[cluster]:
                continue
            return cluster
        return None

    @staticmethod
    def ambiguous_keys(records: Iterable[ServerRecord]) -> set[str]:
        """Keys that several records of the same source share in this batch (monorepos, shared gateways)."""
        counts: Counter[tuple[str, str]] = Counter()
        for record in records:
            for key in record.merge_keys():
                counts[(record.source, key)] += 1
        return {key for (_, key), n in counts.items() if n > 1}
