"""Catalogue writes: importing normalised records (merge, upsert, provenance) and the registry sync checkpoint.

`catalogue_import` is the one write path for every source (files, the live registry API, the bundled
default catalogue). Its guarantees:

- One transaction per call: a failure anywhere (including the search-field refresh) leaves the catalogue as
  it was. `sync_registry` calls it once per page, together with the page's checkpoint.
- Idempotent: each source's record is stored in ServerSource with a hash of its normalised content; a record
  whose hash is unchanged is not written again (only its last_seen is touched), so importing the same
  input twice reports 0 created, 0 updated.
- A server's fields are recomputed from all of its sources' records (importers.merge), so a newer snapshot
  of one source updates what that source changed and nothing else.
- Staff edits survive: fields named in McpServer.curated_fields are never written, tools, credential
  requirements and launch recipes with source="staff" are never touched, rows staff deleted (SuppressedRow
  tombstones) are never re-created, and an import never sets a hidden/deprecated server back to active (only a
  source saying deprecated/deleted changes the status). verified/featured/slug are never written after creation.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.db import connection, models, transaction
from django.utils import timezone

from registry_app.importers.common import (
    MAX_SLUG,
    CredentialRecord,
    LaunchRecord,
    Problem,
    ServerRecord,
    ToolRecord,
    make_slug,
)
from registry_app.importers.merge import SLUG_ORDER, MergePlanner, merge_records, popularity
from registry_app.models import (
    CredentialRequirement,
    LaunchRecipe,
    McpServer,
    ServerSource,
    ServerTool,
    SuppressedRow,
    SyncState,
)

# Bump when the importers' normalisation changes, so the next import rewrites every record once.
IMPORT_LOGIC_VERSION = "3"
STAFF = "staff"
BATCH = 1000
# McpServer fields an import writes unless staff curated them (McpServer.curated_fields), plus `status` (see the
# module docstring). Slug, verified, featured and curated_fields: never.
IMPORTED_FIELDS = ("name", "description", "repository_url", "homepage", "categories", "license", "official",
                   "popularity")
_CRED_KINDS = set(CredentialRequirement.Kind.values)
_CRED_LOCATIONS = set(CredentialRequirement.Location.values)
_RECIPE_KINDS = set(LaunchRecipe.Kind.values)
_TRANSPORTS = set(LaunchRecipe.Transport.values)


@dataclass
class ImportResult:
    """Per-record outcome counts of one import, and the servers it wrote."""

    created: int = 0  # records that became a new server
    merged: int = 0  # new records joined to a server another source (or record) already describes
    updated: int = 0  # records whose content changed since the last import
    unchanged: int = 0
    skipped: int = 0
    kept_out: int = 0  # tools, credentials and recipes the sources still list but staff deleted (SuppressedRow)
    server_ids: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.merged} merged, "
                f"{self.unchanged} unchanged, {self.skipped} skipped"
                + (f"; {self.kept_out} rows staff deleted kept out" if self.kept_out else ""))


Matcher = Callable[..., dict | None]


def _credinfo_matcher() -> tuple[Matcher | None, str]:
    """registry_app.credinfo.match_credential and a fingerprint of the file it reads ('' when there is none).

    The fingerprint goes into every record hash: editing config/credinfo.json and importing again refreshes the
    instructions of every server, while an unchanged file keeps imports idempotent."""
    try:
        from registry_app.credinfo import credinfo_path, match_credential
    except ImportError:
        return None, ""
    path = Path(credinfo_path())
    if not path.is_file():
        return None, ""
    return match_credential, hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _enrich_credentials(merged: ServerRecord, *, slug: str, match: Matcher | None) -> None:
    """Fill service / instructions / pattern / kind from the curated credinfo where the catalogue's own text is
    thin. The catalogue's explicit flags stay; curated text only fills gaps."""
    if match is None:
        return
    for cred in merged.credentials:
        info = match(key=cred.key, server_name=merged.name, repository_url=merged.repository_url, slug=slug)
        if not info:
            continue
        cred.service = cred.service or str(info.get("service") or "")
        cred.instructions = cred.instructions or [str(s) for s in info.get("instructions") or []]
        cred.pattern = cred.pattern or str(info.get("pattern") or "")
        cred.example = cred.example or str(info.get("example") or "")
        if len(cred.description) < 20 and info.get("description"):
            cred.description = str(info["description"])
        if cred.kind == "setting" and info.get("kind") in _CRED_KINDS:
            cred.kind = info["kind"]
        if info.get("secret") is True:
            cred.secret = True


# Slugs the API's own routes use: /api/servers/search would never reach a server called "search".
RESERVED_SLUGS = frozenset({"search"})


def _unique_slug(candidate: str, taken: set[str]) -> str:
    base = make_slug(candidate)[:MAX_SLUG] or "server"
    slug = base
    for n in itertools.count(2):
        if slug not in taken and slug not in RESERVED_SLUGS:
            break
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def _server_values(merged: ServerRecord) -> dict[str, object]:
    """The IMPORTED_FIELDS of a merged server, clipped to their columns."""
    return {
        "name": merged.name[:300],
        "description": merged.description,
        "repository_url": merged.repository_url[:500],
        "homepage": merged.homepage[:500],
        "categories": [c[:100] for c in merged.categories],
        "license": merged.license[:100],
        "official": merged.official,
        "popularity": popularity(merged),
    }


def _tool_values(tool: ToolRecord) -> dict[str, object]:
    return {"description": tool.description, "input_schema": tool.input_schema, "source": tool.source[:40]}


def _cred_values(cred: CredentialRecord) -> dict[str, object]:
    return {
        "location": cred.location if cred.location in _CRED_LOCATIONS else "env",
        "kind": cred.kind if cred.kind in _CRED_KINDS else "setting",
        "description": cred.description,
        "instructions": list(cred.instructions),
        "service": cred.service[:100],
        "required": bool(cred.required),
        "secret": bool(cred.secret),
        "pattern": cred.pattern[:300],
        "format": cred.format[:50],
        "default": cred.default[:500],
        "choices": list(cred.choices),
        "example": cred.example[:300],
        "source": cred.source[:40],
    }


def _recipe_values(recipe: LaunchRecord, priority: int) -> dict[str, object]:
    return {
        "kind": recipe.kind if recipe.kind in _RECIPE_KINDS else "other",
        "identifier": recipe.identifier[:400],
        "version": recipe.version[:100],
        "transport": recipe.transport if recipe.transport in _TRANSPORTS else "stdio",
        "url": recipe.url[:1000],
        "command": recipe.command[:100],
        "args": list(recipe.args),
        "env": dict(recipe.env),
        "headers": dict(recipe.headers),
        "proxy_env": list(recipe.proxy_env),
        "source": recipe.source[:40],
        "priority": priority,
    }


def natural_key(relation: str, row: Mapping | models.Model) -> str:
    """The identity an import gives a tool / credential requirement / launch recipe of one server (a model row
    or its values), as text: the tool name, the credential key, or a recipe's [kind, identifier (any case), url,
    transport] as JSON. SuppressedRow.key stores it."""
    get = row.get if isinstance(row, Mapping) else row.__getattribute__
    if relation == "tools":
        return get("name")
    if relation == "credentials":
        return get("key")
    if relation == "launch_recipes":
        return json.dumps([get("kind"), get("identifier").lower(), get("url"), get("transport")])
    raise ValueError(f"unknown relation {relation!r}")


def _wanted_children(merged: ServerRecord) -> dict[str, dict[str, dict[str, object]]]:
    """{relation: {natural key: row values}}: the tool, credential and launch-recipe rows a merged record makes."""
    recipes: dict[str, dict[str, object]] = {}
    for i, recipe in enumerate(merged.launch):
        values = _recipe_values(recipe, (i + 1) * 10)
        recipes.setdefault(natural_key("launch_recipes", values), values)
    return {
        "tools": {t.name[:300]: {"name": t.name[:300], **_tool_values(t)} for t in merged.tools},
        "credentials": {c.key[:200]: {"key": c.key[:200], **_cred_values(c)} for c in merged.credentials},
        "launch_recipes": recipes,
    }


_CHILD_MODELS: dict[str, type[models.Model]] = {
    "tools": ServerTool, "credentials": CredentialRequirement, "launch_recipes": LaunchRecipe,
}


class _NewServer:
    """A server this import creates; a token for the merge planner until it has a database id."""

    def __init__(self) -> None:
        self.records: list[ServerRecord] = []
        self.server: McpServer | None = None


def _sorted_records(records: Sequence[ServerRecord]) -> list[ServerRecord]:
    return sorted(records, key=lambda r: (SLUG_ORDER.index(r.source) if r.source in SLUG_ORDER else 99, r.source_id))


def catalogue_import(
    *,
    records: Sequence[ServerRecord],
    progress: Callable[[int], None] | None = None,
    refresh_search: bool = True,
) -> ImportResult:
    """Merge `records` into the catalogue (see the module docstring); one transaction."""
    result = ImportResult()
    match, credinfo_fingerprint = _credinfo_matcher()
    salt = f"{IMPORT_LOGIC_VERSION}:{credinfo_fingerprint}:"
    now = timezone.now()
    with transaction.atomic():
        existing: dict[tuple[str, str], tuple[int, int, str, str]] = {}
        planner = MergePlanner()
        for pk, server_id, source, source_id, data_hash, location, keys in _source_rows():
            existing[(source, source_id)] = (pk, server_id, data_hash, location)
            planner.add(server_id, source, keys)
        ambiguous = MergePlanner.ambiguous_keys(records)

        seen: dict[tuple[str, str], str] = {}
        touched_sources: list[int] = []
        moved_sources: dict[int, str] = {}
        touched_servers: set[int] = set()
        changed_records: dict[int, dict[tuple[str, str], ServerRecord]] = {}  # server id -> new/updated records
        updated_sources: dict[int, tuple[ServerRecord, str]] = {}  # ServerSource id -> (record, hash)
        new_sources: list[tuple[object, ServerRecord, str]] = []  # (server id or _NewServer, record, hash)
        new_servers: list[_NewServer] = []
        for record in records:
            ref = (record.source, record.source_id)
            if ref in seen:
                result.skipped += 1
                result.problems.append(Problem(record.location, f"duplicate {record.source} id "
                                                                f"{record.source_id!r} (first at {seen[ref]})"))
                if progress:
                    progress(1)
                continue
            seen[ref] = record.location
            digest = record.content_hash(salt)
            if ref in existing:
                pk, server_id, old_hash, old_location = existing[ref]
                if old_hash == digest:
                    result.unchanged += 1
                    touched_sources.append(pk)
                    touched_servers.add(server_id)
                    if old_location != record.location:
                        moved_sources[pk] = record.location
                else:
                    result.updated += 1
                    updated_sources[pk] = (record, digest)
                    changed_records.setdefault(server_id, {})[ref] = record
            else:
                keys = record.merge_keys()
                target = planner.find(record, keys, ambiguous)
                if target is None:
                    target = _NewServer()
                    new_servers.append(target)
                    result.created += 1
                else:
                    result.merged += 1
                if isinstance(target, _NewServer):
                    target.records.append(record)
                else:
                    changed_records.setdefault(target, {})[ref] = record
                new_sources.append((target, record, digest))
                planner.add(target, record.source, keys)
            if progress:
                progress(1)

        taken = set(McpServer.objects.values_list("slug", flat=True))
        _create_servers(new_servers, taken=taken, match=match, now=now)
        result.kept_out += _update_servers(changed_records, match=match, now=now)

        _copy_create(
            ServerSource,
            [
                ServerSource(
                    server_id=target.server.pk if isinstance(target, _NewServer) else target,
                    source=record.source, source_id=record.source_id[:400], location=record.location[:500],
                    data_hash=digest, data=record.to_dict(), merge_keys=record.merge_keys(),
                )
                for target, record, digest in new_sources
            ],
        )
        if updated_sources:
            rows = list(ServerSource.objects.filter(pk__in=updated_sources))
            for row in rows:
                record, digest = updated_sources[row.pk]
                row.location, row.data_hash, row.data = record.location[:500], digest, record.to_dict()
                row.merge_keys, row.last_seen = record.merge_keys(), now
            ServerSource.objects.bulk_update(rows, ["location", "data_hash", "data", "merge_keys", "last_seen"],
                                             batch_size=BATCH)
        if moved_sources:
            rows = list(ServerSource.objects.filter(pk__in=moved_sources))
            for row in rows:
                row.location = moved_sources[row.pk][:500]
            ServerSource.objects.bulk_update(rows, ["location"], batch_size=BATCH)
        # Provenance bookkeeping only: not counted as an update, and not an edit of the server's content.
        ServerSource.objects.filter(pk__in=touched_sources).update(last_seen=now)
        McpServer.objects.filter(pk__in=touched_servers).update(last_seen=now)

        written = sorted({s.server.pk for s in new_servers} | set(changed_records))
        result.server_ids = written
        if refresh_search and written:
            from registry_app.search_index import refresh_search_fields

            refresh_search_fields(server_ids=written)
    return result


def _source_rows() -> Iterable[tuple[int, int, str, str, str, str, list[str]]]:
    return ServerSource.objects.values_list(
        "pk", "server_id", "source", "source_id", "data_hash", "location", "merge_keys"
    ).iterator(chunk_size=5000)


def _copy_create(model: type[models.Model], objs: list[models.Model]) -> None:
    """Insert `objs` with PostgreSQL COPY, setting their primary keys.

    Why not bulk_create: for ~6,000 servers with ~20,000 child rows and JSON payloads, building and parsing the
    huge INSERT statements took most of the import (about 10 s); COPY streams the rows. Ids are reserved from
    the table's sequence first so that children can point at their server before anything is written."""
    if not objs:
        return
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(objs)],
        )
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = pk
        fields = list(meta.concrete_fields)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        # The raw psycopg cursor: wrap its errors into django.db ones like every other query.
        with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields])


def _create_servers(new_servers: list[_NewServer], *, taken: set[str], match: Matcher | None, now: datetime) -> None:
    merged_all = []
    for new in new_servers:
        merged = merge_records(_sorted_records(new.records))
        slug = _unique_slug(merged.slug or merged.name, taken)
        _enrich_credentials(merged, slug=slug, match=match)
        new.server = McpServer(slug=slug, status=merged.status, last_seen=now, **_server_values(merged))
        merged_all.append(merged)
    _copy_create(McpServer, [n.server for n in new_servers])
    tools, creds, recipes = [], [], []
    for new, merged in zip(new_servers, merged_all, strict=True):
        server_id = new.server.pk
        tools += [ServerTool(server_id=server_id, name=t.name[:300], **_tool_values(t)) for t in merged.tools]
        creds += [CredentialRequirement(server_id=server_id, key=c.key[:200], **_cred_values(c))
                  for c in merged.credentials]
        recipes += [LaunchRecipe(server_id=server_id, **_recipe_values(r, (i + 1) * 10))
                    for i, r in enumerate(merged.launch)]
    _copy_create(ServerTool, tools)
    _copy_create(CredentialRequirement, creds)
    _copy_create(LaunchRecipe, recipes)


def _stored_records(ids: list[int]) -> dict[int, dict[tuple[str, str], ServerRecord]]:
    """Each server's records as its sources last gave them (ServerSource.data)."""
    records: dict[int, dict[tuple[str, str], ServerRecord]] = {i: {} for i in ids}
    for server_id, source, source_id, data in ServerSource.objects.filter(server_id__in=ids).values_list(
            "server_id", "source", "source_id", "data"):
        records[server_id][(source, source_id)] = ServerRecord.from_dict(data)
    return records


@dataclass
class ImportedState:
    """What imports make of one server from its stored source records: the values of the fields an import
    writes (IMPORTED_FIELDS and status) and {relation: {natural key: row values}} of its child rows."""

    fields: dict[str, object]
    children: dict[str, dict[str, dict[str, object]]]


def servers_imported_state(*, servers: Sequence[McpServer]) -> dict[int, ImportedState | None]:
    """Each server as an import of its unchanged sources would write it, ignoring staff pins and tombstones;
    None for a server no source describes (added by hand, or a merged-away duplicate). Curation uses it to put
    a released field or a restored row back at once, without waiting for the source to change."""
    records = _stored_records([server.pk for server in servers])
    match, _ = _credinfo_matcher()
    states: dict[int, ImportedState | None] = {}
    for server in servers:
        if not records[server.pk]:
            states[server.pk] = None
            continue
        merged = merge_records(_sorted_records(list(records[server.pk].values())))
        _enrich_credentials(merged, slug=server.slug, match=match)
        states[server.pk] = ImportedState(fields={**_server_values(merged), "status": merged.status},
                                          children=_wanted_children(merged))
    return states


def _suppressed_keys(ids: list[int]) -> dict[tuple[int, str], set[str]]:
    grouped: dict[tuple[int, str], set[str]] = {}
    for server_id, relation, key in SuppressedRow.objects.filter(server_id__in=ids).values_list(
            "server_id", "relation", "key"):
        grouped.setdefault((server_id, relation), set()).add(key)
    return grouped


def _update_servers(changed: dict[int, dict[tuple[str, str], ServerRecord]], *, match: Matcher | None,
                    now: datetime) -> int:
    """Recompute each changed server from all its sources' records and write only what differs. Returns how many
    rows the sources list that staff deleted (kept out)."""
    if not changed:
        return 0
    ids = list(changed)
    servers = McpServer.objects.in_bulk(ids)
    records = _stored_records(ids)
    for server_id, new in changed.items():
        records[server_id].update(new)
    existing_rows = {relation: _rows_by_server(model, ids) for relation, model in _CHILD_MODELS.items()}
    suppressed = _suppressed_keys(ids)
    server_fields: set[str] = {"last_seen"}
    dirty_servers: list[McpServer] = []
    creates: dict[type, list] = {ServerTool: [], CredentialRequirement: [], LaunchRecipe: []}
    updates: dict[type, list] = {ServerTool: [], CredentialRequirement: [], LaunchRecipe: []}
    deletes: dict[type, list[int]] = {ServerTool: [], CredentialRequirement: [], LaunchRecipe: []}
    kept_out = 0
    for server_id in ids:
        server = servers[server_id]
        merged = merge_records(_sorted_records(list(records[server_id].values())))
        _enrich_credentials(merged, slug=server.slug, match=match)
        curated = set(server.curated_fields or [])
        values = _server_values(merged)
        for name in IMPORTED_FIELDS:
            value = values[name]
            if name not in curated and getattr(server, name) != value:
                setattr(server, name, value)
                server_fields.add(name)
        if merged.status != McpServer.Status.ACTIVE and "status" not in curated and server.status != merged.status:
            server.status = merged.status
            server_fields.add("status")
        server.last_seen = now
        dirty_servers.append(server)
        for relation, wanted in _wanted_children(merged).items():
            kept_out += _diff_children(
                relation, existing_rows[relation].get(server_id, []), wanted=wanted,
                suppressed=suppressed.get((server_id, relation), set()), server_id=server_id, creates=creates,
                updates=updates, deletes=deletes,
            )
    McpServer.objects.bulk_update(dirty_servers, sorted(server_fields), batch_size=BATCH)
    for model in (ServerTool, CredentialRequirement, LaunchRecipe):
        if deletes[model]:
            model.objects.filter(pk__in=deletes[model]).delete()
        _copy_create(model, creates[model])
        for fields, rows in itertools.groupby(sorted(updates[model], key=lambda x: x[0]), key=lambda x: x[0]):
            model.objects.bulk_update([row for _, row in rows], list(fields), batch_size=BATCH)
    return kept_out


def _rows_by_server(model: type[models.Model], ids: list[int]) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for row in model.objects.filter(server_id__in=ids):
        grouped.setdefault(row.server_id, []).append(row)
    return grouped


def _diff_children(relation: str, rows: list, *, wanted: dict, suppressed: set[str], server_id: int,
                   creates: dict, updates: dict, deletes: dict) -> int:
    """Bring one server's tool/credential/recipe rows to `wanted`; rows staff own (source="staff") stay as
    they are and win over an imported row with the same key; keys staff deleted (`suppressed`, the server's
    SuppressedRow keys) are never created, and an imported row with such a key is removed. Returns how many
    wanted rows were kept out as suppressed."""
    model = _CHILD_MODELS[relation]
    staff_keys = {natural_key(relation, row) for row in rows if row.source == STAFF}
    existing = {natural_key(relation, row): row for row in rows if row.source != STAFF}
    kept_out = 0
    for wanted_key, values in wanted.items():
        if wanted_key in suppressed:
            kept_out += 1
            continue
        if wanted_key in staff_keys:
            continue
        row = existing.pop(wanted_key, None)
        if row is None:
            creates[model].append(model(server_id=server_id, **values))
            continue
        changed = tuple(sorted(name for name, value in values.items() if getattr(row, name) != value))
        if changed:
            for name in changed:
                setattr(row, name, values[name])
            updates[model].append((changed, row))
    deletes[model] += [row.pk for row in existing.values()]
    return kept_out


# --- registry sync checkpoint ----------------------------------------------------------------------------------


def sync_state_get(*, url: str) -> SyncState:
    state, _ = SyncState.objects.get_or_create(url=url[:500])
    return state


def sync_state_start_pass(*, state: SyncState, since: str) -> SyncState:
    state.cursor, state.pass_since, state.pass_max_updated, state.pages = "", since, "", 0
    state.last_started_at, state.last_error = timezone.now(), ""
    state.save()
    return state


def sync_page_import(*, state: SyncState, records: Sequence[ServerRecord], next_cursor: str,
                     max_updated: str) -> ImportResult:
    """Import one page and advance the checkpoint in the same transaction: after a crash the saved cursor
    always points at the first page whose servers are not in the catalogue yet."""
    with transaction.atomic():
        result = catalogue_import(records=records)
        state.cursor = next_cursor[:1000]
        state.pages += 1
        if max_updated and (not state.pass_max_updated or _ts(max_updated) > _ts(state.pass_max_updated)):
            state.pass_max_updated = max_updated[:64]
        state.last_error = ""
        state.save()
    return result


def sync_state_finish_pass(*, state: SyncState) -> SyncState:
    state.watermark = state.pass_max_updated or state.watermark
    state.cursor, state.pass_since, state.pass_max_updated = "", "", ""
    state.last_completed_at = timezone.now()
    state.save()
    return state


def sync_state_fail(*, state: SyncState, error: str) -> None:
    state.last_error = error[:2000]
    state.save(update_fields=["last_error"])


def _ts(value: str) -> datetime:
    """RFC 3339 with up to nanoseconds ('2025-09-11T22:25:50.737872147Z') -> aware datetime (microseconds)."""
    from registry_app.importers.registry_api import parse_timestamp

    return parse_timestamp(value)
