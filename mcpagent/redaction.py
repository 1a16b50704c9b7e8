"""Secret shapes, and the redaction of secrets from what MCP servers and models send back.

SECRET_SHAPES are the token formats we recognise (GitHub, Slack, OpenAI/Anthropic, Stripe, AWS, Google, JWTs,
PEM private keys, ...); the log filter (mcpagent.logging_filters) and the launch checks (agents_app.safety) use
them too.

A Redactor replaces with "***", in text or in nested JSON-like data:
- every secret value it was built with (at least 4 characters), and the worker's own secrets from settings
  (SECRET_KEY, ENCRYPTION_KEY and its fallbacks, ANTHROPIC_API_KEY, OPENAI_API_KEY, database passwords);
- these encodings of each value, so a hostile server cannot pass one through a plain replace: URL-encoded
  (quote and quote_plus, %XX in either case), base64 and URL-safe base64 at each of the three byte alignments
  (so also inside a longer blob, e.g. Basic auth of "user:value"), hex (either case), JSON string escaping,
  and the value reversed; an encoded form shorter than 8 characters is left alone (it would hit ordinary text);
- known token shapes, Bearer/Basic/Token credentials, passwords in URLs, and `--token=VALUE` / `--api-key VALUE`
  style options.
Anything else (a value split up, interleaved, encrypted, ...) passes: a server that holds a secret can always
disguise it. Redaction stops accidents and simple smuggling; the sandbox and which secrets a server gets are
the boundary.
"""

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_VALUE_CHARS = 4
MIN_ENCODED_CHARS = 8

SECRET_SHAPES: dict[str, str] = {
    "a private key block": r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    "a Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "a Slack app token": r"\bxapp-[A-Za-z0-9-]{10,}",
    "a GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    "a GitHub fine-grained token": r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    "an OpenAI or Anthropic key": r"\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}",
    "a Notion token": r"\b(?:secret|ntn)_[A-Za-z0-9]{20,}",
    "a Stripe key": r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{10,}",
    "a webhook signing secret": r"\bwhsec_[A-Za-z0-9]{10,}",
    "an AWS access key id": r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    "a Google API key": r"\bAIza[0-9A-Za-z_-]{35}",
    "a Google OAuth token": r"\bya29\.[0-9A-Za-z_-]{20,}",
    "an mcpagent API key": r"\bmcpa_[A-Za-z0-9_-]{20,}",
    "a JWT": r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "Fernet ciphertext": r"\bgAAAAA[A-Za-z0-9_=-]{40,}",
}
SECRET_SHAPES_RE = re.compile("|".join(f"(?:{p})" for p in SECRET_SHAPES.values()), re.S)
_SHAPE_RES = {kind: re.compile(pattern, re.S) for kind, pattern in SECRET_SHAPES.items()}
# "Authorization: Bearer abc", "Basic dXNlcjpwYXNz"
AUTH_SCHEME_RE = re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=-]{6,}", re.I)
# scheme://user:password@host
URL_PASSWORD_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(@)")
# Command-line options that take a secret: --token, --github-token, --api-key, --apikey, --password, --secret,
# --client-secret, --access-key, --private-key, --pat (not --max-tokens, --token-file, ...).
_SECRET_OPTION = (r"--?(?:[A-Za-z0-9]+[-_])*(?:token|api[-_]?key|apikey|access[-_]?key|secret[-_]?key"
                  r"|private[-_]?key|client[-_]?secret|secret|password|passwd|pwd|pat)")
SECRET_OPTION_RE = re.compile(f"^{_SECRET_OPTION}$", re.I)
_SECRET_OPTION_VALUE_RE = re.compile(rf"((?<![\w-]){_SECRET_OPTION}(?:=|\s+))(?!-)([^\s\"',;&]{{4,}})", re.I)


def secret_shape(text: str) -> str | None:
    """What known secret shape `text` contains ("a GitHub token"), or None."""
    if not SECRET_SHAPES_RE.search(text):
        return None
    return next(kind for kind, pattern in _SHAPE_RES.items() if pattern.search(text))


def redact_shapes(text: str, mask: str = MASK) -> str:
    """`text` with known token shapes, Bearer/Basic credentials and passwords in URLs replaced by `mask`."""
    text = SECRET_SHAPES_RE.sub(mask, text)
    text = AUTH_SCHEME_RE.sub(lambda m: m.group(1) + m.group(2) + mask, text)
    return URL_PASSWORD_RE.sub(lambda m: m.group(1) + mask + m.group(2), text)


def worker_secrets() -> list[str]:
    """The secrets this process holds of its own (settings): never to be shown to anyone."""
    from django.conf import settings

    values = [settings.SECRET_KEY, getattr(settings, "ANTHROPIC_API_KEY", ""), getattr(settings, "OPENAI_API_KEY", "")]
    for keys in [getattr(settings, "ENCRYPTION_KEY", ""), *getattr(settings, "ENCRYPTION_KEY_FALLBACKS", [])]:
        values += [keys, *keys.split(",")]  # a comma-separated list of Fernet keys, and each key
    values += [db.get("PASSWORD") or "" for db in settings.DATABASES.values()]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def encoded_forms(value: str) -> set[str]:
    """`value` and the encodings of it a Redactor also removes (see the module docstring)."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote_plus(value), raw.hex(), raw.hex().upper(), value[::-1],
             json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in forms if "%" in form}
    for offset in range(3):
        # Base64 of the value as it would appear `offset` bytes into a longer blob: only the characters that
        # depend on the value's bytes alone.
        start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(b"\0" * offset + raw).decode()[start:end])
    return {form for form in forms if form == value or len(form) >= MIN_ENCODED_CHARS}


class Redactor:
    """Removes secret values (and their encodings) and known secret shapes from text or JSON-like data.

    Build one per task with every secret value the process holds for it: `Redactor(values)`. The worker's own
    secrets (worker_secrets) are added unless `include_worker_secrets=False`."""

    def __init__(self, values: Iterable[str] = (), *, include_worker_secrets: bool = True) -> None:
        secrets = {str(v) for v in values if v is not None}
        if include_worker_secrets:
            secrets.update(worker_secrets())
        forms = {form for v in secrets if len(v) >= MIN_VALUE_CHARS for form in encoded_forms(v)}
        # Longest first: a value that contains another is replaced whole.
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        self._values_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._values_re is not None:
            text = self._values_re.sub(MASK, text)
        text = redact_shapes(text)
        return _SECRET_OPTION_VALUE_RE.sub(lambda m: m.group(1) + MASK, text)

    __call__ = redact

    def redact_data(self, data: Any) -> Any:
        """A copy of JSON-like `data` (dicts, lists, tuples, strings; keys too) with every string redacted."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {self.redact_data(key): self.redact_data(value) for key, value in data.items()}
        if isinstance(data, (list, tuple)):
            return type(data)(self.redact_data(value) for value in data)
        return data
