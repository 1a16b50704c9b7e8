"""The toolsdk MCP registry folder: `packages/<category>/*.json` (one server each) and
`indexes/packages-list.json` (packageName -> category, canonical path, `validated`, tools).

The same packageName appears in several category folders; the file the index points to is kept and the
others are reported as skipped duplicates, their categories merged into the kept record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import (
    MAX_DESCRIPTION,
    MAX_NAME,
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
    text,
    tools_from,
    valid_npm_name,
    valid_pypi_name,
)

# Package names under this scope are toolsdk's listings of hosted servers, not installable npm packages.
_REMOTE_ONLY_SCOPE = "@toolsdk-remote/"


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "packages").is_dir() and (
        (path / "indexes" / "packages-list.json").is_file() or any((path / "packages").glob("*/*.json"))
    )


def read(path: Path) -> ImportBatch:
    batch = ImportBatch(source="toolsdk", path=str(path))
    index_path = path / "indexes" / "packages-list.json"
    index: dict[str, Any] = {}
    if index_path.is_file():
        loaded = read_json(index_path)
        if not isinstance(loaded, dict):
            raise SourceError(f"{index_path}: expected an object keyed by package name")
        index = loaded
    else:
        batch.notes.append("no indexes/packages-list.json: tools, validation and canonical paths unknown")
    files = sorted((path / "packages").rglob("*.json"))
    if not files:
        raise SourceError(f"{path}: no packages/**/*.json files")
    by_name: dict[str, list[tuple[str, dict]]] = {}
    for file in files:
        location = str(file.relative_to(path))
        try:
            data = read_json(file)
        except SourceError as exc:
            batch.problems.append(Problem(location, str(exc).removeprefix(f"{file}: ")))
            continue
        if not isinstance(data, dict):
            batch.problems.append(Problem(location, "not a JSON object"))
            continue
        package = text(data.get("packageName"), 400)
        if not package:
            batch.problems.append(Problem(location, "no packageName"))
            continue
        by_name.setdefault(package, []).append((location, data))
    for package, entries in by_name.items():
        meta = index.get(package) if isinstance(index.get(package), dict) else {}
        canonical = f"packages/{meta.get('path')}" if meta.get("path") else ""
        entries.sort(key=lambda e: (e[0] != canonical, e[0]))
        location, data = entries[0]
        categories = [meta.get("category")] if isinstance(meta.get("category"), str) else []
        categories += [Path(loc).parent.name for loc, _ in entries]
        for other, _ in entries[1:]:
            batch.problems.append(Problem(other, f"duplicate packageName {package!r}: kept {location}, "
                                                 "categories merged"))
        warnings: list[str] = []
        try:
            record = _record(package, data, meta, location, categories, warnings)
            batch.records.append(finish(record, warnings, batch.problems))
        except RecordError as exc:
            batch.problems.append(Problem(location, str(exc)))
    return batch


def _credentials(env: Any, warnings: list[str]) -> list[CredentialRecord]:
    if not isinstance(env, dict):
        return []
    result = []
    for key, spec in env.items():
        key = text(key, 200)
        if not key:
            continue
        spec = spec if isinstance(spec, dict) else {"description": spec}
        result.append(CredentialRecord(
            key=key,
            description=text(spec.get("description"), 4000),
            required=optional_bool(spec.get("required")),
            secret=optional_bool(spec.get("secret")),
            default=text(spec.get("default"), 500),
        ))
    return result


def _record(package: str, data: dict, meta: dict, location: str, categories: list[str],
            warnings: list[str]) -> ServerRecord:
    runtime = text(data.get("runtime"), 20).lower()
    version = text(data.get("packageVersion"), 100)
    bin_name = text(data.get("bin"), 200)
    bin_args = [text(a, 500) for a in data.get("binArgs") or [] if text(a, 500)] if isinstance(
        data.get("binArgs"), list) else []
    credentials = _credentials(data.get("env"), warnings)
    launch: list[LaunchRecord] = []
    if runtime == "node" and valid_npm_name(package) and not package.startswith(_REMOTE_ONLY_SCOPE):
        launch.append(npm_recipe(package, version, bin_name=bin_name, package_args=bin_args))
    elif runtime == "python" and valid_pypi_name(package):
        launch.append(pypi_recipe(package, version, bin_name=bin_name, package_args=bin_args))
    elif runtime == "docker" and "/" in package:
        launch.append(oci_recipe(package, version, env_keys=[c.key for c in credentials], package_args=bin_args))
    for remote in data.get("remotes") or []:
        if not isinstance(remote, dict) or not text(remote.get("url"), 1000):
            continue
        auth = remote.get("auth") if isinstance(remote.get("auth"), dict) else {}
        headers = {}
        if text(auth.get("type"), 40).lower().startswith("oauth"):
            headers["Authorization"] = "Bearer ${Authorization}"
            if not any(c.key == "Authorization" for c in credentials):
                scopes = ", ".join(text(s, 100) for s in auth.get("scopes") or [] if isinstance(s, str))
                credentials.append(CredentialRecord(
                    key="Authorization", location="header", required=True, secret=True, kind="token",
                    description="OAuth 2.0 access token for the hosted server (it signs users in with OAuth)"
                                + (f"; scopes: {scopes}" if scopes else ""),
                ))
        launch.append(remote_recipe(text(remote.get("url"), 1000), text(remote.get("type"), 20), headers))
    url = text(data.get("url"), 2000)
    repo_url, subfolder = normalise_repository_url(url)
    homepage = "" if repo_url else normalise_http_url(url)
    tools = tools_from(meta.get("tools"), where=location, warnings=warnings)
    name = text(data.get("name"), MAX_NAME) or package.rsplit("/", 1)[-1]
    return ServerRecord(
        source="toolsdk",
        source_id=package,
        location=location,
        name=name,
        slug=make_slug(Path(location).stem),
        description=long_text(data.get("description"), limit=MAX_DESCRIPTION, what="description", warnings=warnings),
        repository_url=repo_url,
        repository_subfolder=subfolder,
        homepage=homepage,
        categories=categories,
        license=text(data.get("license"), 100),
        launch=launch,
        tools=tools,
        credentials=credentials,
        signals={"toolsdk": True, "validated": meta.get("validated") is True},
    )
