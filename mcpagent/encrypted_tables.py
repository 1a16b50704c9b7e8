"""Which tables hold mcpagent.crypto ciphertext, so key rotation (`manage.py rotate_encryption_key`) re-encrypts
all of them before the old key is dropped.

Each app registers its own models' encrypted fields in its AppConfig.ready(): the rotation command (in the vault)
then reaches every table without importing the apps that depend on the vault. `unregistered_encrypted_fields`
names any encrypted field no app registered; the command refuses to run while there is one, since a key dropped
after a rotation that skipped it would leave that data unreadable.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.db import models

from mcpagent.crypto import Ciphertext, EncryptedBytesField, EncryptedJSONField


@dataclass(frozen=True)
class EncryptedTable:
    label: str  # names the table in the rotation's report and audit record
    model: type[models.Model]
    fields: tuple[str, ...]
    # More columns to write with a re-encrypted row, from its new tokens (those of the fields re-encrypted).
    also_update: Callable[[dict[str, Ciphertext]], dict] | None = None


_tables: dict[str, EncryptedTable] = {}


def encrypted_table_register(label: str, model: type[models.Model], fields: tuple[str, ...],
                             also_update: Callable[[dict[str, Ciphertext]], dict] | None = None) -> None:
    """Have key rotation re-encrypt `fields` of `model` (call it from the owning app's AppConfig.ready())."""
    _tables[label] = EncryptedTable(label=label, model=model, fields=tuple(fields), also_update=also_update)


def encrypted_tables() -> list[EncryptedTable]:
    return list(_tables.values())


def unregistered_encrypted_fields() -> list[str]:
    """"app_label.Model.field" of every encrypted field of an installed model that no app registered."""
    covered = {f"{table.model._meta.label}.{name}" for table in _tables.values() for name in table.fields}
    found = (f"{model._meta.label}.{field.name}"
             for model in apps.get_models() if not model._meta.proxy
             for field in model._meta.local_concrete_fields
             if isinstance(field, (EncryptedJSONField, EncryptedBytesField)))
    return sorted(set(found) - covered)
