"""Redaction of what servers and models send back: every secret value of the task, its common encodings, the
worker's own secrets and known secret shapes become ***, and ordinary text is left alone."""

import base64
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from mcpagent.redaction import MASK, Redactor, encoded_forms, secret_shape, worker_secrets

VALUE = "s3cr3t-Value/with+chars&more"


def _redactor(*values: str) -> Redactor:
    return Redactor(values, include_worker_secrets=False)


@pytest.mark.parametrize("smuggled", [
    VALUE,
    quote(VALUE, safe=""),
    re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(VALUE, safe="")),
    quote_plus(VALUE),
    base64.b64encode(VALUE.encode()).decode(),
    base64.urlsafe_b64encode(VALUE.encode()).decode(),
    VALUE.encode().hex(),
    VALUE.encode().hex().upper(),
    VALUE[::-1],
    json.dumps(VALUE)[1:-1],
])
def test_a_value_and_its_encodings_are_redacted(smuggled):
    text = f"result: {smuggled} done"
    redacted = _redactor(VALUE).redact(text)
    assert smuggled not in redacted and MASK in redacted
    assert redacted.startswith("result: ") and redacted.endswith(" done")


@pytest.mark.parametrize("prefix", [b"", b"u:", b"us:", b"user:"])
def test_base64_of_a_value_inside_a_longer_blob_is_redacted_at_any_alignment(prefix):
    blob = base64.b64encode(prefix + VALUE.encode() + b"!trailer").decode()
    redacted = _redactor(VALUE).redact(f"Authorization: X {blob}")
    assert MASK in redacted
    # What is left cannot be decoded back to the value.
    remains = redacted.split()[-1].split(MASK)
    assert all(len(part) < 8 for part in remains[:1]) and VALUE not in redacted


def test_longest_value_first_and_short_values_are_not_redacted():
    redactor = _redactor("abcd-long-token-value", "abcd", "xyz")
    assert redactor.redact("abcd-long-token-value and abcd and xyz") == "*** and *** and xyz"


def test_values_of_every_server_of_the_task_are_redacted():
    redactor = _redactor("github-value-123", "slack-value-456", "/private/path/of/repo")
    text = "a github-value-123 b slack-value-456 c /private/path/of/repo"
    assert redactor.redact(text) == "a *** b *** c ***"


def test_the_workers_own_secrets_are_redacted(settings, monkeypatch):
    settings.SECRET_KEY = "django-secret-key-for-this-test"
    settings.ENCRYPTION_KEY = "fernet-key-one=,fernet-key-two="
    settings.ENCRYPTION_KEY_FALLBACKS = ["fernet-old-key="]
    settings.ANTHROPIC_API_KEY = "anthropic-test-value"
    settings.OPENAI_API_KEY = "openai-test-value"
    monkeypatch.setitem(settings.DATABASES["default"], "PASSWORD", "dbpass-42")
    secrets = worker_secrets()
    for value in ("django-secret-key-for-this-test", "fernet-key-one=", "fernet-key-two=", "fernet-old-key=",
                  "anthropic-test-value", "openai-test-value", "dbpass-42"):
        assert value in secrets
        assert value not in Redactor().redact(f"leak {value} here")
    assert "dbpass-42" not in Redactor(include_worker_secrets=True).redact("x dbpass-42")
    assert Redactor(include_worker_secrets=False).redact("x dbpass-42") == "x dbpass-42"


@pytest.mark.parametrize("text, expected", [
    ("token ghp_" + "a1B2" * 9 + " ok", "token *** ok"),
    ("xoxb-1234567890-0987654321-AbCdEfGhIjKl", "***"),
    ("key=sk-ant-api03-" + "Zx9" * 8, "key=***"),
    ("AKIAIOSFODNN7EXAMPLE.", "***."),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "***"),
    ("AIzaSyD-1234567890abcdefghijklmnopqrstu", "***"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w", "jwt ***"),
    ("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY----- end", "*** end"),
    ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
    ("postgres://app:hunter2secret@db/x", "postgres://app:***@db/x"),
    ("ran --token=abcdef123 and --api-key zzzzzz", "ran --token=*** and --api-key ***"),
])
def test_known_secret_shapes_are_redacted(text, expected):
    assert _redactor().redact(text) == expected


@pytest.mark.parametrize("text", [
    "The time in Europe/Berlin is 2026-12-02T10:00:00+01:00",
    "commit 0123456789abcdef0123456789abcdef01234567 by t <t@example.com>",
    "see https://github.com/modelcontextprotocol/servers and /srv/repo/README.md",
    '{"max_tokens": 4096, "model": "sonnet", "id": "550e8400-e29b-41d4-a716-446655440000"}',
])
def test_ordinary_text_is_left_alone(text):
    assert _redactor("unrelated-value").redact(text) == text


def test_nested_data_is_redacted_keys_included():
    data = {"content": [{"type": "text", "text": f"v={VALUE}"}], VALUE: (1, VALUE), "n": 3, "ok": None}
    assert _redactor(VALUE).redact_data(data) == {
        "content": [{"type": "text", "text": "v=***"}], MASK: (1, MASK), "n": 3, "ok": None,
    }


def test_short_encodings_are_not_redacted():
    assert all(len(form) >= 8 for form in encoded_forms("abcd") if form != "abcd")
    assert secret_shape("ghp_" + "x" * 30) == "a GitHub token" and secret_shape("hello") is None
