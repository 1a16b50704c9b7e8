"""Merge the copies: one entry per (client, end user, server, key) keeps the newest live value (the newest of all
when none is live), and every session and agent that held a copy gets a reference to it. Each merged copy is
audited as a `delete` with the entry it was merged into. Files without a key stay one entry each. Values of a
server a client configured itself ("custom/<name>", held by an agent) are per agent from now on
("custom/<agent id>/<name>"), so two agents' servers of one name never merge. Going back gives each extra holder
its own copy again and the custom servers their names."""

from django.db import migrations
from django.utils import timezone


def _later(first, second):
    """The longer of two lifetimes (None: no end)."""
    return None if first is None or second is None else max(first, second)


def _entries(model, fk):
    now = timezone.now()
    groups = {}
    fields = ("pk", "client_id", "end_user", "server", "key", "session_id", "agent_id", "expires_at", "updated_at")
    for row in model.objects.only(*fields).order_by("pk").iterator():
        group = (row.client_id, row.end_user, row.server, row.key) if row.key else ("unkeyed", row.pk)
        groups.setdefault(group, []).append(row)
    for rows in groups.values():
        alive = [row for row in rows if row.expires_at is None or row.expires_at > now]
        yield sorted(alive or rows, key=lambda row: row.updated_at, reverse=True), rows


CUSTOM = "custom/"


def _custom_per_agent(model):
    for row in model.objects.filter(server__startswith=CUSTOM, agent_id__isnull=False).only("pk", "server",
                                                                                            "agent_id"):
        model.objects.filter(pk=row.pk).update(server=f"{CUSTOM}{row.agent_id}/{row.server[len(CUSTOM):]}"[:200])


def _custom_shared(model):
    for row in model.objects.filter(server__startswith=CUSTOM).only("pk", "server", "agent_id"):
        prefix = f"{CUSTOM}{row.agent_id}/"
        if row.agent_id and row.server.startswith(prefix):
            model.objects.filter(pk=row.pk).update(server=CUSTOM + row.server[len(prefix):])


def forwards(apps, schema_editor):
    Reference = apps.get_model("vault", "VaultReference")
    AuditEvent = apps.get_model("vault", "AuditEvent")
    for name, fk, object_type in (("Credential", "credential", "credential"), ("StoredFile", "stored_file", "file")):
        model = apps.get_model("vault", name)
        _custom_per_agent(model)
        references, events, merged = [], [], []
        for holders, rows in _entries(model, fk):
            kept = holders[0]
            expires = kept.expires_at
            seen = set()
            for row in holders:
                expires = _later(expires, row.expires_at)
                for field in ("session_id", "agent_id"):
                    holder = getattr(row, field)
                    if holder is not None and (field, holder) not in seen:
                        seen.add((field, holder))
                        references.append(Reference(**{fk + "_id": kept.pk, field: holder}))
            for row in rows:
                if row.pk == kept.pk:
                    continue
                merged.append(row.pk)
                events.append(AuditEvent(
                    actor_type="system", actor_label="migration", action="delete", object_type=object_type,
                    object_id=str(row.pk), server=row.server, key=row.key, client_id=row.client_id,
                    end_user=row.end_user, session_id=row.session_id, agent_id=row.agent_id,
                    reason="merged_into_entry", metadata={"kept": str(kept.pk)}))
            if expires != kept.expires_at:
                model.objects.filter(pk=kept.pk).update(expires_at=expires)
        model.objects.filter(pk__in=merged).delete()
        Reference.objects.bulk_create(references, batch_size=1000)
        AuditEvent.objects.bulk_create(events, batch_size=1000)


def backwards(apps, schema_editor):
    Reference = apps.get_model("vault", "VaultReference")
    for name, fk in (("Credential", "credential"), ("StoredFile", "stored_file")):
        model = apps.get_model("vault", name)
        for pk in list(model.objects.values_list("pk", flat=True)):
            entry = model.objects.get(pk=pk)
            refs = list(Reference.objects.filter(**{fk: entry}).order_by("pk"))
            sessions = [ref.session_id for ref in refs if ref.session_id]
            agents = [ref.agent_id for ref in refs if ref.agent_id]
            pairs = [(sessions[0] if sessions else None, agents[0] if agents else None)]
            pairs += [(session, None) for session in sessions[1:]] + [(None, agent) for agent in agents[1:]]
            for index, (session_id, agent_id) in enumerate(pairs):
                if index:
                    entry.pk = None
                    entry._state.adding = True
                entry.session_id, entry.agent_id = session_id, agent_id
                entry.save()
        _custom_shared(model)
    Reference.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('vault', '0003_vault_references'),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
