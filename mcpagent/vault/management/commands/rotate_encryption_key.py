"""Re-encrypt every stored secret under the newest ENCRYPTION_KEY: every table an app registered in
mcpagent.encrypted_tables (vault credentials, files and OAuth tokens, agent runs' sealed messages, ...).

Rotation: set ENCRYPTION_KEY="NEW,OLD" (newest first) everywhere, run this command, then drop OLD.
Rows are processed in primary-key order in batches, each batch in its own transaction with its rows locked,
so an interrupted run loses nothing and a rerun resumes: a row that the newest key alone decrypts is counted as
already current and left alone. Running it twice is harmless (the second run re-encrypts nothing).
Rows no configured key decrypts are counted as failed and named by id; the command then exits non-zero.
Rows whose encrypted fields are all empty (NULL) are not counted. An encrypted field no app registered stops the
command before it changes anything.
"""

from functools import reduce
from operator import or_

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import BinaryField, Q
from django.db.models.functions import Cast

from mcpagent.crypto import DecryptionError, configured_keys, is_current, rotate
from mcpagent.encrypted_tables import EncryptedTable, encrypted_tables, unregistered_encrypted_fields
from mcpagent.vault.audit import Actor, audit_record
from mcpagent.vault.models import AuditEvent


class Command(BaseCommand):
    help = "Re-encrypt every stored secret (all registered encrypted tables) under the newest ENCRYPTION_KEY " \
           "(resumable, idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=200, help="Rows per transaction (default 200).")

    def handle(self, *args, batch_size: int, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        unregistered = unregistered_encrypted_fields()
        if unregistered:
            raise CommandError(
                f"Not rotating: {', '.join(unregistered)} hold(s) encrypted data that no app registered for rotation "
                "(mcpagent.encrypted_tables.encrypted_table_register in the app's AppConfig.ready())."
            )
        key_count = len(configured_keys())
        summary: dict[str, dict] = {}
        for table in encrypted_tables():
            summary[table.label] = counts = self._rotate(table, batch_size)
            self.stdout.write(
                f"{table.label}: {counts['re_encrypted']} re-encrypted, {counts['already_current']} already current, "
                f"{counts['failed']} failed"
            )
        audit_record(
            action=AuditEvent.Action.ROTATE, object_type=AuditEvent.ObjectType.KEY,
            actor=Actor.system("rotate_encryption_key"), reason="rotate_encryption_key",
            metadata={"keys_configured": key_count}
            | {label: {k: v for k, v in c.items() if k != "failed_ids"} for label, c in summary.items()},
        )
        failed = [(label, pk) for label, counts in summary.items() for pk in counts["failed_ids"]]
        if failed:
            listed = ", ".join(f"{label} id {pk}" for label, pk in failed[:20])
            raise CommandError(
                f"{len(failed)} secret(s) could not be decrypted with any configured key and were left as they are "
                f"({listed}{', ...' if len(failed) > 20 else ''}). Add the key they were encrypted with to "
                "ENCRYPTION_KEY_FALLBACKS and run the command again, or delete them."
            )

    def _rotate(self, table: EncryptedTable, batch_size: int) -> dict:
        counts = {"re_encrypted": 0, "already_current": 0, "failed": 0, "failed_ids": []}
        # The raw tokens (Cast skips the fields' decryption); rows with every encrypted field NULL hold nothing.
        tokens = {f"rotation_token_{name}": Cast(name, BinaryField()) for name in table.fields}
        sealed = reduce(or_, (Q(**{f"{name}__isnull": False}) for name in table.fields))
        last_pk = None
        while True:
            with transaction.atomic():
                rows = table.model._base_manager.filter(sealed).order_by("pk")
                if last_pk is not None:
                    rows = rows.filter(pk__gt=last_pk)
                # Rows locked until the batch commits.
                batch = list(
                    rows.select_for_update(of=("self",)).annotate(**tokens).values_list("pk", *tokens)[:batch_size]
                )
                for pk, *row_tokens in batch:
                    outcome = self._rotate_row(table, pk, row_tokens)
                    counts[outcome] += 1
                    if outcome == "failed":
                        counts["failed_ids"].append(str(pk))
            if len(batch) < batch_size:
                return counts
            last_pk = batch[-1][0]

    def _rotate_row(self, table: EncryptedTable, pk, row_tokens: list) -> str:
        """Re-encrypt the row's fields that are not under the newest key; those no key opens stay as they are."""
        changes, failed = {}, False
        for name, token in zip(table.fields, row_tokens):
            if token is None or is_current(bytes(token)):
                continue
            try:
                changes[name] = rotate(bytes(token))
            except DecryptionError:
                failed = True
        if changes:
            extra = table.also_update(changes) if table.also_update else {}
            table.model._base_manager.filter(pk=pk).update(**changes, **extra)
        if failed:
            return "failed"
        return "re_encrypted" if changes else "already_current"
