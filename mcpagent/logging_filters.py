"""Redaction of secret-shaped text, for log records and for error details that could echo input.

The first line of defence is that our code never logs a value (tests capture every record and search for the
values they stored). This filter is the second: installed on the root handler (settings.LOGGING), it rewrites
each record's message, arguments, traceback and stack text so that known token shapes (Slack, GitHub, OpenAI,
Anthropic, Notion, Stripe, AWS, Google API keys, our own mcpa_ keys, JWTs, Fernet ciphertext, PEM private
keys: mcpagent.redaction.SECRET_SHAPES), Bearer/Basic credentials, passwords in URLs and long values after
key=/token=/password=-style names are replaced by [REDACTED]. It returns a redacted copy, so other handlers keep
their own view of the record.
"""

import copy
import logging
import re
from typing import Any

from mcpagent.redaction import redact_shapes

REDACTED = "[REDACTED]"

# api_key=..., "password": "...", token: ..., X-Api-Key: ...
_NAMED_VALUE_RE = re.compile(
    r"((?:[A-Za-z0-9_.-]*(?:key|token|secret|passw(?:or)?d|pwd|auth|credential|signature)[A-Za-z0-9_.-]*)"
    r"[\"']?\s*[=:]\s*[\"']?)(?!(?:bearer|basic|token)\s)([^\s\"'&,;<>}\])]{6,})",
    re.I,
)


def redact(text: str) -> str:
    """`text` with every secret-shaped substring replaced by [REDACTED]."""
    if not text:
        return text
    text = redact_shapes(text, REDACTED)
    return _NAMED_VALUE_RE.sub(
        lambda m: m.group(0) if m.group(2) == REDACTED or m.group(2).startswith("[REDACTED") else m.group(1) + REDACTED,
        text,
    )


def scrub_echoed_input(detail: Any, data: Any) -> Any:
    """Error `detail` with any string of the request `data` (4+ characters) that it quotes replaced by
    [REDACTED]: framework messages such as DRF's '"{input}" is not a valid choice.' must not echo a secret."""
    values = sorted({v for v in _strings(data) if len(v) >= 4}, key=len, reverse=True)
    if not values:
        return detail

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: clean(value) for key, value in node.items()}
        if isinstance(node, list):
            return [clean(value) for value in node]
        if isinstance(node, str):
            text = str(node)
            for value in values:
                if value in text:
                    text = text.replace(value, REDACTED)
            return type(node)(text, code=node.code) if hasattr(node, "code") else text
        return node

    return clean(detail)


def _strings(data: Any, depth: int = 0) -> list[str]:
    if depth > 20:
        return []
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict) or hasattr(data, "lists"):
        items = data.lists() if hasattr(data, "lists") else data.items()
        return [s for key, value in items for s in _strings(key, depth + 1) + _strings(value, depth + 1)]
    if isinstance(data, (list, tuple)):
        return [s for value in data for s in _strings(value, depth + 1)]
    return []


def redact_structure(value: Any, depth: int = 0) -> Any:
    """`value` with every string in it (nested in dicts, lists and tuples) passed through `redact`."""
    if isinstance(value, str):
        return redact(value)
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {key: redact_structure(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_structure(item, depth + 1) for item in value]
    if isinstance(value, tuple):  # e.g. exc_info, which must stay a tuple
        return tuple(redact_structure(item, depth + 1) for item in value)
    return value


def redact_event(logger: Any, method_name: str, event_dict: dict) -> dict:
    """structlog processor, last before rendering: the event's message, fields and rendered traceback redacted
    (structlog formats tracebacks from exc_info itself, so the filter's redacted exc_text is not what it prints)."""
    return redact_structure(event_dict)


class RedactSecretsFilter(logging.Filter):
    """Handler filter: passes every record on, as a redacted copy."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> logging.LogRecord:
        if isinstance(record.msg, dict):  # a structlog event, rendered later by its ProcessorFormatter
            clean = copy.copy(record)
            clean.msg = redact_structure(record.msg)
            return clean
        try:
            message = record.getMessage()
        except Exception:  # a malformed call (wrong args) is still logged, without interpolation
            message = str(record.msg)
        clean = copy.copy(record)
        clean.msg, clean.args = redact(message), None
        if record.exc_info and not record.exc_text:
            clean.exc_text = self._formatter.formatException(record.exc_info)
        if clean.exc_text:
            clean.exc_text = redact(clean.exc_text)
        if record.stack_info:
            clean.stack_info = redact(record.stack_info)
        return clean
