"""Re-encrypt every stored secret (credential values, file contents) under the newest ENCRYPTION_KEY.

Rotation: set ENCRYPTION_KEY="NEW,OLD" (newest first) everywhere, run this command, then drop OLD.
Rows are processed in primary-key order in batches, each batch in its own transaction with its rows locked,
so an interrupted run loses nothing and a rerun resumes: a row that the newest key alone decrypts is counted as
already current and left alone. Running it twice is harmless (the second run re-encrypts nothing).
Rows no configured key decrypts are counted as failed and named by id; the command then exits non-zero.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import BinaryField
from django.db.models.functions import Cast

from mcpagent.crypto import DecryptionError, configured_keys, decrypt_bytes, fingerprint, is_current, rotate
from mcpagent.vault.audit import Actor, audit_record
from mcpagent.vault.models import AuditEvent, Credential, StoredFile


class Command(BaseCommand):
    help = "Re-encrypt every stored credential and file under the newest ENCRYPTION_KEY (resumable, idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=200, help="Rows per transaction (default 200).")

    def handle(self, *args, batch_size: int, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        key_count = len(configured_keys())
        summary: dict[str, dict] = {}
        for label, model, field in (("credentials", Credential, "value"), ("files", StoredFile, "content")):
            summary[label] = self._rotate(model, field, batch_size)
            counts = summary[label]
            self.stdout.write(
                f"{label}: {counts['re_encrypted']} re-encrypted, {counts['already_current']} already current, "
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
            listed = ", ".join(f"{label[:-1]} {pk}" for label, pk in failed[:20])
            raise CommandError(
                f"{len(failed)} secret(s) could not be decrypted with any configured key and were left as they are "
                f"({listed}{', ...' if len(failed) > 20 else ''}). Add the key they were encrypted with to "
                "ENCRYPTION_KEY_FALLBACKS and run the command again, or delete them."
            )

    def _rotate(self, model, field: str, batch_size: int) -> dict:
        counts = {"re_encrypted": 0, "already_current": 0, "failed": 0, "failed_ids": []}
        last_pk = None
        while True:
            with transaction.atomic():
                rows = model.objects.order_by("pk")
                if last_pk is not None:
                    rows = rows.filter(pk__gt=last_pk)
                # The raw token (Cast skips the field's decryption), rows locked until the batch commits.
                batch = list(
                    rows.select_for_update(of=("self",))
                    .annotate(token=Cast(field, BinaryField()))
                    .values_list("pk", "token")[:batch_size]
                )
                for pk, token in batch:
                    token = bytes(token)
                    if is_current(token):
                        counts["already_current"] += 1
                        continue
                    try:
                        new_token = rotate(token)
                    except DecryptionError:
                        counts["failed"] += 1
                        counts["failed_ids"].append(str(pk))
                        continue
                    changes = {field: new_token}
                    if model is StoredFile:
                        # The fingerprint is keyed by the newest key as well.
                        changes["fingerprint"] = fingerprint(decrypt_bytes(new_token))
                    model.objects.filter(pk=pk).update(**changes)
                    counts["re_encrypted"] += 1
            if len(batch) < batch_size:
                return counts
            last_pk = batch[-1][0]
