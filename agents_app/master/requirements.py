"""What the chosen servers need from the user: required credentials, optional settings, files.

Curated instructions (config/credinfo.json, matched at import or here) come first, then the catalogue's own text.
Values already collected are never asked for again."""

from registry_app.credinfo import (
    generic_credential_text, is_configuration_setting, looks_like_placeholder, match_credential,
)
from registry_app.models import CredentialRequirement

_FILE_TYPES = {".json": "json", ".pem": "pem", ".key": "pem", ".yaml": "yaml", ".yml": "yaml", ".env": "env"}


def _curated(req: CredentialRequirement) -> dict | None:
    server = req.server
    return match_credential(key=req.key, server_name=server.name, repository_url=server.repository_url, slug=server.slug)


def _generic(req: CredentialRequirement) -> tuple[str, list[str]]:
    server = req.server
    return generic_credential_text(key=req.key, kind=req.kind, location=req.location, server_name=server.name,
                                   repository_url=server.repository_url or "", homepage=server.homepage,
                                   slug=server.slug)


def _instructions(req: CredentialRequirement, curated: dict | None) -> list[str]:
    # A source's "instructions" may be a placeholder (your_account_sid): those steps are dropped, never shown.
    own = [str(step) for step in req.instructions or [] if not looks_like_placeholder(str(step))]
    if own:
        return own
    if curated and curated.get("instructions"):
        return [str(step) for step in curated["instructions"]]
    if not req.description or looks_like_placeholder(req.description):
        return _generic(req)[1]
    steps = [req.description.strip()]
    where = {"header": "HTTP header", "env": "environment variable"}.get(req.location, req.location)
    steps.append(f"Provide it as {req.key} ({where}) for {req.server.name}.")
    if req.example and not looks_like_placeholder(req.example):
        steps.append(f"It looks like: {req.example}")
    return steps


def _description(req: CredentialRequirement, curated: dict | None) -> str:
    if req.description and not looks_like_placeholder(req.description):
        return req.description
    return (curated or {}).get("description", "") or _generic(req)[0]


def counts_as_required(*, required: bool, secret: bool, default: str | None, key: str = "") -> bool:
    """Must the user give this value? Not when the server has a real default (a placeholder default is none),
    nor for a setting whose name says it tunes how the server runs (NODE_ENV, a port, a log level, a flag):
    sources flag those "required" wrongly. Sources rarely flag everything either, so a secret with no default
    cannot work unset and counts as required."""
    if default and not looks_like_placeholder(default):
        return False
    if key and is_configuration_setting(key):
        return False
    return bool(required or secret)


def _is_required(req: CredentialRequirement) -> bool:
    return counts_as_required(required=req.required, secret=req.secret, default=req.default, key=req.key)


def plan_requirements(server_slugs: list[str], *, collected: dict[str, set[str]] | None = None,
                      collected_files: set[str] | None = None) -> dict:
    """{required_credentials, optional_settings, required_files} for the servers, minus what is collected."""
    collected = collected or {}
    collected_files = collected_files or set()
    order = {slug: i for i, slug in enumerate(server_slugs)}
    rows = (
        CredentialRequirement.objects.filter(server__slug__in=server_slugs)
        .select_related("server")
        .order_by("server__slug", "-required", "key")
    )
    required, optional, files = [], [], []
    for req in sorted(rows, key=lambda r: (order[r.server.slug], not _is_required(r), r.key)):
        slug = req.server.slug
        curated = _curated(req)
        description = _description(req, curated)
        if req.kind == CredentialRequirement.Kind.FILE_PATH or req.location == CredentialRequirement.Location.FILE:
            if _is_required(req) and f"{slug}:{req.key}" not in collected_files and req.key not in collected_files:
                suffix = next((t for ext, t in _FILE_TYPES.items() if ext in (req.default or req.example).lower()), "json")
                files.append({"key": req.key, "mcp_server": slug, "description": description, "file_type": suffix,
                              "instructions": _instructions(req, curated)})
            continue
        if req.key in collected.get(slug, set()):
            continue
        item = {
            "mcp_server": slug,
            "credential_key": req.key,
            "description": description,
            "instructions": _instructions(req, curated),
            "secret": req.secret,
            "kind": req.kind,
        }
        if _is_required(req):
            required.append(item)
        else:
            item["default"] = req.default
            optional.append(item)
    return {"required_credentials": required, "optional_settings": optional, "required_files": files}
