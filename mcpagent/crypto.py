"""Secrets at rest: Fernet encryption with key rotation, and model fields that store only ciphertext.

Why not django-cryptography: version 1.1 fails at import on Django 6.1 (`cannot import name 'baseconv'
from 'django.utils'`), and its maintained forks encrypt with a single key, so a key can never be rotated
without downtime and a hand-written migration. This module is the small part of it we need, built on
`cryptography`'s MultiFernet (AES-128-CBC + HMAC-SHA256, authenticated):

- keys: `ENCRYPTION_KEY` (comma-separated Fernet keys, newest first) followed by `ENCRYPTION_KEY_FALLBACKS`.
  New ciphertext always uses the first key; any listed key decrypts. Rotation: prepend a new key, run
  `manage.py rotate_encryption_key` (re-encrypts every row under the first key), then drop the old key.
- a value encrypted under a key that is no longer listed raises `DecryptionError`; it never returns garbage.
- `EncryptedJSONField` keeps JSON types (str, int, float, bool, None, list, dict); `EncryptedBytesField` keeps
  raw bytes (uploaded files). Both are bytea columns holding the Fernet token, are not editable in forms,
  and expose only ciphertext to generic introspection (`value_from_object`: model_to_dict, serializers), so
  dumpdata/loaddata round-trip without plaintext.

No key configured:
- with `MCPAGENT_REQUIRE_SECRETS=1` settings refuse to load (ImproperlyConfigured): production must set
  `ENCRYPTION_KEY` (generate one with `python -c "from cryptography.fernet import Fernet;
  print(Fernet.generate_key().decode())"`).
- otherwise (development, the embedded default) a random key is generated once into
  `DATA_DIR/encryption.key` (mode 0600) and reused, with a warning. It is random rather than derived from
  SECRET_KEY because the development SECRET_KEY is a public constant. Losing that file makes stored
  secrets unreadable, which for a development database only means re-entering them.
"""

import functools
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from mcpagent.secret_files import read_or_create_secret_file

logger = logging.getLogger("mcpagent.crypto")

KEY_FILE_NAME = "encryption.key"
# Marks ciphertext in serializer output (dumpdata) so loaddata can tell it from a plain value.
_SERIALIZED_MARKER = "$fernet"


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key (wrong or removed key, or corrupt data)."""


class Ciphertext(bytes):
    """An already-encrypted Fernet token. Encrypted fields store it as-is instead of encrypting it again
    (key rotation writes re-encrypted tokens this way)."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def _split(raw: Any) -> tuple[str, ...]:
    if not raw:
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(item.strip() for item in items if item and item.strip())


def configured_keys() -> tuple[str, ...]:
    """The key list, newest first: ENCRYPTION_KEY entries, then ENCRYPTION_KEY_FALLBACKS (or the local key file)."""
    primary = _split(getattr(settings, "ENCRYPTION_KEY", ""))
    fallbacks = _split(getattr(settings, "ENCRYPTION_KEY_FALLBACKS", ()))
    if primary:
        return primary + fallbacks
    if getattr(settings, "MCPAGENT_REQUIRE_SECRETS", False):
        raise ImproperlyConfigured("ENCRYPTION_KEY must be set when MCPAGENT_REQUIRE_SECRETS=1")
    return (_local_key(Path(settings.DATA_DIR) / KEY_FILE_NAME),) + fallbacks


@functools.lru_cache(maxsize=4)
def _local_key(path: Path) -> str:
    """Read the development key file, creating it atomically (0600) on first use."""
    key = read_or_create_secret_file(path, generate_key)
    logger.warning(
        "ENCRYPTION_KEY is not set: secrets are encrypted with the local development key in %s. "
        "Set ENCRYPTION_KEY (and MCPAGENT_REQUIRE_SECRETS=1) in production.",
        path,
    )
    return key


@functools.lru_cache(maxsize=8)
def _fernets(keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet, bytes]:
    parsed = []
    for position, key in enumerate(keys, start=1):
        try:
            parsed.append(Fernet(key.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            # Name the position, never the key.
            raise ImproperlyConfigured(
                f"Encryption key #{position} (ENCRYPTION_KEY, then ENCRYPTION_KEY_FALLBACKS) is not a valid "
                "Fernet key (32 url-safe base64-encoded bytes)."
            ) from None
    fingerprint_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"mcpagent file fingerprint"
    ).derive(keys[0].encode("ascii"))
    return MultiFernet(parsed), parsed[0], fingerprint_key


def _current() -> tuple[MultiFernet, Fernet, bytes]:
    return _fernets(configured_keys())


def encrypt_bytes(data: bytes) -> Ciphertext:
    return Ciphertext(_current()[0].encrypt(data))


def decrypt_bytes(token: bytes, *, what: str = "a stored secret") -> bytes:
    try:
        return _current()[0].decrypt(bytes(token))
    except InvalidToken:
        raise DecryptionError(
            f"Cannot decrypt {what} with any configured key (ENCRYPTION_KEY, ENCRYPTION_KEY_FALLBACKS): it was "
            "encrypted with a key that is not listed, or the data is corrupt."
        ) from None


def is_current(token: bytes) -> bool:
    """True if the token decrypts with the newest key alone (rotation has nothing to do for it)."""
    try:
        _current()[1].decrypt(bytes(token))
    except InvalidToken:
        return False
    return True


def rotate(token: bytes) -> Ciphertext:
    """Re-encrypt a token under the newest key. Raises DecryptionError if no listed key opens it."""
    try:
        return Ciphertext(_current()[0].rotate(bytes(token)))
    except InvalidToken:
        raise DecryptionError(
            "Cannot rotate a stored secret: no configured key decrypts it (ENCRYPTION_KEY, ENCRYPTION_KEY_FALLBACKS)."
        ) from None


def fingerprint(data: bytes) -> str:
    """A keyed digest (HMAC-SHA256 under a key derived from the newest encryption key) to tell identical files
    apart. Unlike a plain SHA-256 it cannot be used to confirm guesses of a small secret file's content
    offline; it changes when the key rotates (the rotation command recomputes it)."""
    return hmac.new(_current()[2], data, hashlib.sha256).hexdigest()[:32]


class _EncryptedField(models.BinaryField):
    """A bytea column holding a Fernet token; the Python value is the decrypted value."""

    def __init__(self, *args, **kwargs):
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("editable", None)
        return name, path, args, kwargs

    def _encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def _decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def _what(self) -> str:
        return f"{self.model.__name__}.{self.name}" if hasattr(self, "model") else "a stored secret"

    def get_prep_value(self, value: Any) -> Any:
        if value is None and (self.null or isinstance(self, EncryptedBytesField)):
            return None  # SQL NULL; in a non-null JSON field None is the JSON value null, encrypted
        if isinstance(value, Ciphertext):
            return bytes(value)
        return bytes(encrypt_bytes(self._encode(value)))

    def from_db_value(self, value: Any, expression, connection) -> Any:
        if value is None:
            return None
        return self._decode(decrypt_bytes(value, what=self._what()))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {_SERIALIZED_MARKER}:
            return self._decode(decrypt_bytes(value[_SERIALIZED_MARKER].encode("ascii"), what=self._what()))
        return value

    def value_from_object(self, obj) -> Any:
        # Generic introspection (model_to_dict, serializers, dumpdata) sees ciphertext, never plaintext.
        value = getattr(obj, self.attname)
        if value is None and self.null:
            return None
        return {_SERIALIZED_MARKER: bytes(encrypt_bytes(self._encode(value))).decode("ascii")}

    def value_to_string(self, obj) -> Any:
        return self.value_from_object(obj)


class EncryptedJSONField(_EncryptedField):
    description = "A JSON value encrypted with Fernet (MultiFernet over ENCRYPTION_KEY)"

    def _encode(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def _decode(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


class EncryptedBytesField(_EncryptedField):
    description = "Bytes encrypted with Fernet (MultiFernet over ENCRYPTION_KEY)"

    def _encode(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{self._what()} holds bytes, got {type(value).__name__}")
        return bytes(value)

    def _decode(self, data: bytes) -> bytes:
        return data
