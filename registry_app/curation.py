"""Staff curation of the catalogue. Every write the admin makes goes through these services, and each leaves a
CurationEdit (who, when, {field: [old, new]}) so the catalogue's hand-made state is auditable.

How edits survive imports (registry_app.services.catalogue_import): server fields a curator changes are added
to McpServer.curated_fields, which imports never write; tool, credential and launch-recipe rows a curator
creates or edits get source="staff", which imports never touch; a row a source provides that a curator deletes
(or renames) leaves a SuppressedRow tombstone, and imports never re-create a suppressed row.

Both are reversible, and the reversal is recorded like any edit: releasing a pinned field (servers_release_curated)
gives it back to the sources, restoring a suppressed row (suppressions_restore) brings it back. Either takes
effect at once, from the server's stored source records (what the next import of an unchanged source would
write), not only when the source next changes.

Merging duplicates hides the duplicates instead of deleting them: sessions and stored credentials refer to
servers by slug (plain text, not a foreign key), so a deleted slug would leave them dangling, while a hidden one
still resolves and never shows in search. The hidden shell keeps no sources, so no import touches or revives it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from functools import cache
from itertools import groupby
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from mcpagent.errors import ApplicationError
from registry_app.embeddings import get_provider
from registry_app.models import (
    CredentialRequirement,
    CurationEdit,
    LaunchRecipe,
    McpServer,
    ServerEmbedding,
    ServerSource,
    ServerTool,
    SuppressedRow,
)
from registry_app.search_index import EmbedResult, refresh_search_fields, server_embeddings_refresh
from registry_app.services import STAFF, natural_key, servers_imported_state

# Server fields staff may edit; each edit pins the field against imports.
CURATABLE_FIELDS = (
    "name", "description", "repository_url", "homepage", "categories", "license", "status", "verified", "featured",
    "official", "popularity",
)
# Edits to these change what search indexes (search_index.build_document), so the search fields are refreshed.
_INDEXED_FIELDS = {"name", "description", "categories", "repository_url"}
_CHILDREN: dict[str, tuple[type[models.Model], tuple[str, ...]]] = {
    "tools": (ServerTool, ("name", "description", "input_schema")),
    "credentials": (
        CredentialRequirement,
        ("key", "location", "kind", "description", "instructions", "service", "required", "secret", "pattern",
         "format", "default", "choices", "example"),
    ),
    "launch_recipes": (
        LaunchRecipe,
        ("kind", "identifier", "version", "transport", "url", "command", "args", "env", "headers", "priority"),
    ),
}

User = AbstractBaseUser | None


def _invalid(message: str, details: Any = None) -> ApplicationError:
    return ApplicationError(message, code="invalid_curation", status=400, details=details)


def _child_label(relation: str, row: models.Model) -> str:
    if relation == "tools":
        return row.name
    if relation == "credentials":
        return row.key
    return f"{row.kind}:{row.identifier or row.url}"


def _row_values(relation: str, row: models.Model) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _CHILDREN[relation][1]}


def _suppress(*, server: McpServer, relation: str, row: models.Model, user: User,
              imported_keys: Callable[[], set[str]]) -> bool:
    """Leave a tombstone for `row` (as it was before the edit) if a source provides it, so no import brings it
    back: an imported row, or a staff-edited one whose key the server's sources still list. A row only staff
    ever had needs none. True when a tombstone was written."""
    key = natural_key(relation, row)
    if row.source == STAFF and key not in imported_keys():
        return False
    _, created = SuppressedRow.objects.get_or_create(
        server=server, relation=relation, key=key,
        defaults={"label": _child_label(relation, row)[:500], "row": _row_values(relation, row), "user": user},
    )
    return created


@transaction.atomic
def server_create_curated(*, user: User, data: dict[str, Any]) -> McpServer:
    """A server added by hand. Every field given a non-default value is curated, so an import that later finds
    the server (same repository) never overwrites it but may still fill the fields left empty."""
    unknown = set(data) - set(CURATABLE_FIELDS) - {"slug"}
    if unknown:
        raise _invalid("These fields cannot be set by curation.", sorted(unknown))
    server = McpServer(**data)
    try:
        server.full_clean(exclude=["search_vector", "content_hash", "search_document"])
    except ValidationError as exc:
        raise _invalid("The server is not valid.", exc.message_dict) from None
    server.curated_fields = sorted(
        name for name, value in data.items()
        if name != "slug" and value != McpServer._meta.get_field(name).get_default()
    )
    server.save()
    CurationEdit.objects.create(
        server=server, user=user, action="create", changes={name: [None, data[name]] for name in sorted(data)}
    )
    refresh_search_fields(server_ids=[server.pk])
    return server


@transaction.atomic
def server_update_curated(*, server: McpServer, user: User, changes: dict[str, Any]) -> McpServer:
    """Apply staff edits to a server, pin the edited fields against imports and record {field: [old, new]}.
    Values equal to the stored ones are not edits and are ignored. Returns the saved server."""
    unknown = set(changes) - set(CURATABLE_FIELDS)
    if unknown:
        raise _invalid("These fields cannot be edited by curation.", sorted(unknown))
    # Old values come from the database (the caller's instance may already hold the new ones, as in the admin).
    current = McpServer.objects.select_for_update().get(pk=server.pk)
    diff = {name: [getattr(current, name), value] for name, value in changes.items() if getattr(current, name) != value}
    if not diff:
        return current
    for name, (_, value) in diff.items():
        setattr(current, name, value)
    try:
        current.clean_fields(exclude=[f.name for f in McpServer._meta.concrete_fields if f.name not in diff])
    except ValidationError as exc:
        raise _invalid("The edit is not valid.", exc.message_dict) from None
    current.curated_fields = sorted(set(current.curated_fields) | set(diff))
    current.save(update_fields=[*diff, "curated_fields", "updated_at"])
    CurationEdit.objects.create(server=current, user=user, action="edit", changes=diff)
    if _INDEXED_FIELDS & set(diff):
        refresh_search_fields(server_ids=[current.pk])
    return current


def _servers_set(*, server_ids: Iterable[int], field: str, value: Any, user: User, action: str) -> int:
    """Set one field on many servers (one UPDATE per batch), pin it, and record one CurationEdit per server that
    actually changed. Returns how many changed."""
    with transaction.atomic():
        servers = list(
            McpServer.objects.select_for_update().filter(pk__in=list(server_ids)).only("id", field, "curated_fields")
        )
        now = timezone.now()
        changed, edits = [], []
        for server in servers:
            old = getattr(server, field)
            if old == value:
                continue
            edits.append(CurationEdit(server=server, user=user, action=action, changes={field: [old, value]}))
            setattr(server, field, value)
            server.curated_fields = sorted(set(server.curated_fields) | {field})
            server.updated_at = now
            changed.append(server)
        McpServer.objects.bulk_update(changed, [field, "curated_fields", "updated_at"], batch_size=1000)
        CurationEdit.objects.bulk_create(edits, batch_size=1000)
    return len(changed)


def servers_set_status(*, server_ids: Iterable[int], status: str, user: User) -> int:
    """Mark servers active / deprecated / hidden. Imports never change a curated status back."""
    if status not in McpServer.Status.values:
        raise _invalid(f"Unknown status {status!r}.", {"allowed": list(McpServer.Status.values)})
    return _servers_set(server_ids=server_ids, field="status", value=status, user=user, action="set_status")


def servers_set_verified(*, server_ids: Iterable[int], verified: bool, user: User) -> int:
    """Mark servers as checked (or no longer checked) by staff."""
    return _servers_set(server_ids=server_ids, field="verified", value=bool(verified), user=user, action="set_verified")


@transaction.atomic
def server_children_save(
    *,
    server: McpServer,
    user: User,
    relation: str,
    created: Sequence[models.Model] = (),
    changed: Sequence[tuple[models.Model, Sequence[str]]] = (),
    deleted: Sequence[models.Model] = (),
) -> CurationEdit | None:
    """Save staff edits to a server's tools, credentials or launch recipes (unsaved instances, as an admin inline
    formset yields them). Created and edited rows become source="staff" so imports leave them alone; one
    CurationEdit records every row's changes as {"tools.<name>.<field>": [old, new]}.

    Deleting a row a source provides leaves a SuppressedRow so that no import re-creates it; so does renaming
    one (changing its identity: tool name, credential key, recipe kind / package / URL / transport), or the
    import would bring the old row back beside the renamed one. Each tombstone is recorded in the same
    CurationEdit as {"tools.<name>.suppressed": [False, True]}."""
    if relation not in _CHILDREN:
        raise _invalid(f"Unknown relation {relation!r}.", {"allowed": sorted(_CHILDREN)})
    model, fields = _CHILDREN[relation]
    diff: dict[str, list] = {}

    @cache
    def imported_keys() -> set[str]:
        state = servers_imported_state(servers=[server])[server.pk]
        return set(state.children[relation]) if state else set()

    old_rows = model.objects.select_for_update().in_bulk([row.pk for row, _ in changed if row.pk])
    for row, names in changed:
        old = old_rows.get(row.pk)
        if old is None or old.server_id != server.pk:
            raise _invalid(f"That {relation} row does not belong to this server.")
        old_label = _child_label(relation, old)
        row_diff = {
            f"{relation}.{old_label}.{name}": [getattr(old, name), getattr(row, name)]
            for name in names
            if name in fields and getattr(old, name) != getattr(row, name)
        }
        if row_diff:
            diff.update(row_diff)
            if natural_key(relation, old) != natural_key(relation, row) and _suppress(
                    server=server, relation=relation, row=old, user=user, imported_keys=imported_keys):
                diff[f"{relation}.{old_label}.suppressed"] = [False, True]
            row.source = STAFF
            row.save()
    for row in created:
        row.server = server
        row.source = STAFF
        row.save()
        diff[f"{relation}.{_child_label(relation, row)}"] = [None, {name: getattr(row, name) for name in fields}]
    for row in deleted:
        if row.server_id != server.pk:
            raise _invalid(f"That {relation} row does not belong to this server.")
        label = _child_label(relation, row)
        diff[f"{relation}.{label}"] = [_row_values(relation, row), None]
        if _suppress(server=server, relation=relation, row=row, user=user, imported_keys=imported_keys):
            diff[f"{relation}.{label}.suppressed"] = [False, True]
        row.delete()
    if not diff:
        return None
    edit = CurationEdit.objects.create(server=server, user=user, action=f"edit_{relation}", changes=diff)
    if relation != "launch_recipes":
        refresh_search_fields(server_ids=[server.pk])
    return edit


@transaction.atomic
def suppressions_restore(*, suppression_ids: Iterable[int], user: User) -> int:
    """Undo staff deletions of imported rows: delete the tombstones and put each row back as the server's stored
    source records give it (what the next import writes), unless the server already has a row with that key
    (staff added their own) or no source lists it any more. Later imports update the restored row as usual.
    One CurationEdit per server (action "restore"): {"tools.<name>.suppressed": [True, False]} and, for a row
    put back, {"tools.<name>": [None, {its values}]}. Returns how many tombstones were removed."""
    tombstones = list(
        SuppressedRow.objects.select_for_update().filter(pk__in=list(suppression_ids)).select_related("server")
        .order_by("server_id", "relation", "label")
    )
    if not tombstones:
        return 0
    servers = {t.server_id: t.server for t in tombstones}
    states = servers_imported_state(servers=list(servers.values()))
    reindex = []
    for server_id, group in groupby(tombstones, key=lambda t: t.server_id):
        server, diff = servers[server_id], {}
        for tombstone in group:
            relation = tombstone.relation
            diff[f"{relation}.{tombstone.label}.suppressed"] = [True, False]
            state = states[server_id]
            values = state.children[relation].get(tombstone.key) if state else None
            model = _CHILDREN[relation][0]
            if values is None or any(natural_key(relation, row) == tombstone.key
                                     for row in model.objects.filter(server=server)):
                continue
            row = model.objects.create(server=server, **values)
            diff[f"{relation}.{tombstone.label}"] = [None, _row_values(relation, row)]
            if relation != "launch_recipes":
                reindex.append(server_id)
        CurationEdit.objects.create(server=server, user=user, action="restore", changes=diff)
    SuppressedRow.objects.filter(pk__in=[t.pk for t in tombstones]).delete()
    if reindex:
        refresh_search_fields(server_ids=reindex)
    return len(tombstones)


def servers_release_curated(*, server_ids: Iterable[int], fields: Collection[str], user: User) -> int:
    """Un-pin curated fields of servers, so imports write them again. A released field takes at once the value
    the server's stored source records give it (what the next import of an unchanged source writes; for status
    the sources' status, also back to active), and every later import updates it. verified and featured are
    never imported: releasing them only removes the pin; so does releasing a field of a server no source
    describes. Servers that have none of `fields` pinned are left alone. One CurationEdit per changed server
    (action "release"): {"curated_fields": [old, new], field: [old, new] for each value that changed}.
    Returns how many servers changed."""
    fields = set(fields)
    unknown = fields - set(CURATABLE_FIELDS)
    if unknown:
        raise _invalid("These fields cannot be released.", sorted(unknown))
    if not fields:
        raise _invalid("Choose at least one pinned field to release.")
    with transaction.atomic():
        servers = [s for s in McpServer.objects.select_for_update().filter(pk__in=list(server_ids)).order_by("pk")
                   if fields & set(s.curated_fields)]
        states = servers_imported_state(servers=servers)
        now, reindex = timezone.now(), []
        for server in servers:
            released = fields & set(server.curated_fields)
            pinned = sorted(set(server.curated_fields) - released)
            diff: dict[str, list] = {"curated_fields": [server.curated_fields, pinned]}
            state = states[server.pk]
            for name in sorted(released):
                if state is not None and name in state.fields and getattr(server, name) != state.fields[name]:
                    diff[name] = [getattr(server, name), state.fields[name]]
                    setattr(server, name, state.fields[name])
            server.curated_fields, server.updated_at = pinned, now
            server.save(update_fields=sorted({*diff, "updated_at"}))
            CurationEdit.objects.create(server=server, user=user, action="release", changes=diff)
            if _INDEXED_FIELDS & set(diff):
                reindex.append(server.pk)
        if reindex:
            refresh_search_fields(server_ids=reindex)
    return len(servers)


@transaction.atomic
def servers_merge(*, target: McpServer, duplicates: Sequence[McpServer], user: User) -> McpServer:
    """Fold duplicate servers into `target`: their sources (so later imports of those records update the target),
    the tools / credentials / launch recipes the target lacks and has not suppressed, their tombstones (rows
    staff deleted stay deleted), and their categories. The duplicates are hidden (see the module docstring for
    why not deleted) and keep a CurationEdit naming the target."""
    dup_ids = [d.pk for d in duplicates if d.pk != target.pk]
    if not dup_ids:
        raise _invalid("Choose at least one duplicate other than the target.")
    locked = McpServer.objects.select_for_update().in_bulk([target.pk, *dup_ids])
    if target.pk not in locked or len(locked) != len(set(dup_ids)) + 1:
        raise _invalid("Some of the servers to merge no longer exist.")
    target = locked[target.pk]
    dups = [locked[pk] for pk in dict.fromkeys(dup_ids)]

    # Keys the target takes no row for: its own rows, and the rows staff deleted from it (its tombstones).
    taken = {relation: {natural_key(relation, row) for row in model.objects.filter(server=target)}
             for relation, (model, _) in _CHILDREN.items()}
    for relation, key in SuppressedRow.objects.filter(server=target).values_list("relation", "key"):
        taken[relation].add(key)
    tool_names, cred_keys, recipe_keys = taken["tools"], taken["credentials"], taken["launch_recipes"]
    moved: dict[str, list] = {"sources": [], "tools": [], "credentials": [], "launch_recipes": [], "suppressed": []}
    categories = list(target.categories)
    now = timezone.now()
    for dup in dups:
        moved["sources"] += [f"{s}:{i}" for s, i in ServerSource.objects.filter(server=dup).values_list("source", "source_id")]
        ServerSource.objects.filter(server=dup).update(server=target)
        tools = ServerTool.objects.filter(server=dup).exclude(name__in=tool_names)
        names = list(tools.values_list("name", flat=True))
        tools.update(server=target)
        tool_names.update(names)
        moved["tools"] += names
        creds = CredentialRequirement.objects.filter(server=dup).exclude(key__in=cred_keys)
        keys = list(creds.values_list("key", flat=True))
        creds.update(server=target)
        cred_keys.update(keys)
        moved["credentials"] += keys
        recipe_ids = []
        for recipe in LaunchRecipe.objects.filter(server=dup).order_by("priority", "id"):
            key = natural_key("launch_recipes", recipe)
            if key not in recipe_keys:
                recipe_keys.add(key)
                recipe_ids.append(recipe.pk)
                moved["launch_recipes"].append(_child_label("launch_recipes", recipe))
        LaunchRecipe.objects.filter(pk__in=recipe_ids).update(server=target)
        # The duplicate's sources now feed the target: its tombstones go along, so what staff deleted from it
        # stays deleted; except where the target has that row itself (the tombstone would remove the target's).
        tombstone_ids = []
        for tombstone in SuppressedRow.objects.filter(server=dup).order_by("relation", "label"):
            if tombstone.key not in taken[tombstone.relation]:
                taken[tombstone.relation].add(tombstone.key)
                tombstone_ids.append(tombstone.pk)
                moved["suppressed"].append(f"{tombstone.relation}.{tombstone.label}")
        SuppressedRow.objects.filter(pk__in=tombstone_ids).update(server=target)
        categories += [c for c in dup.categories if c not in categories]
        ServerEmbedding.objects.filter(server=dup).delete()  # hidden servers are never searched
        CurationEdit.objects.create(
            server=dup, user=user, action="merged_into",
            changes={"merged_into": [None, target.slug], "status": [dup.status, McpServer.Status.HIDDEN]},
        )
        dup.status = McpServer.Status.HIDDEN
        dup.curated_fields = sorted(set(dup.curated_fields) | {"status"})
        dup.updated_at = now
    McpServer.objects.bulk_update(dups, ["status", "curated_fields", "updated_at"])

    changes: dict[str, list] = {"merged": [None, [d.slug for d in dups]]}
    changes.update({name: [None, values] for name, values in moved.items() if values})
    if categories != target.categories:
        changes["categories"] = [target.categories, categories]
        target.categories = categories
        target.save(update_fields=["categories", "updated_at"])
    CurationEdit.objects.create(server=target, user=user, action="merge", changes=changes)
    refresh_search_fields(server_ids=[target.pk, *dup_ids])
    return target


def servers_reembed(*, server_ids: Iterable[int], user: User = None) -> EmbedResult:
    """Recompute the search text and the embedding (configured provider) of the given servers, stale or not.

    Deliberately not one transaction: embeddings commit batch by batch (search_index.server_embeddings_refresh),
    so a long run keeps its progress, and its CREATE INDEX cannot run while deferred constraint checks are
    pending in an enclosing transaction. The CurationEdits are written once the embeddings are stored."""
    ids = list(McpServer.objects.filter(pk__in=list(server_ids)).values_list("pk", flat=True))
    refresh_search_fields(server_ids=ids)
    result = server_embeddings_refresh(provider=get_provider(), only_stale=False, server_ids=ids)
    if user is not None:
        CurationEdit.objects.bulk_create(
            [CurationEdit(server_id=pk, user=user, action="reembed", changes={"embedding": [None, result.model]})
             for pk in ids],
            batch_size=1000,
        )
    return result
