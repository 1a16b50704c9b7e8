"""Format checks for credential values before they are stored, and masked hints for display.

Order of checks for one value: type, whitespace trimmed, not empty, length cap, no control characters (except
newlines/tabs, for PEM text), then every rule that applies: the catalogue requirement's `format`, `choices` and
`pattern`, a curated pattern (passed in by the caller: registry_app.credinfo's), and the built-in provider
rules matched on the key name (Slack, GitHub, OpenAI, Anthropic, Notion, Stripe, AWS) or the requirement's
kind/name (URL, email, file path).
Values of unknown formats are accepted as plain strings.

Every reason names what was expected and never contains the value (reasons go back to the client and to logs).
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from django.conf import settings

from mcpagent.logging_filters import redact

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
# A catalogue pattern with a quantified group that is itself quantified can backtrack for minutes on a long
# value (catalogue data comes from public registries): such patterns are skipped, not applied.
_NESTED_QUANTIFIER_RE = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")


@dataclass(frozen=True)
class Rule:
    name: str  # what is expected, shown to the user
    regex: re.Pattern


def _rule(name: str, pattern: str) -> Rule:
    return Rule(name, re.compile(pattern))


# Built-in provider rules: (key-name regex, rule). The first key match decides.
PROVIDER_RULES: list[tuple[re.Pattern, Rule]] = [
    (re.compile(r"SLACK.*BOT.*TOKEN", re.I), _rule("a Slack bot token (xoxb-...)", r"^(?:xoxe\.)?xoxb-[A-Za-z0-9-]{10,}$")),
    (re.compile(r"SLACK.*USER.*TOKEN", re.I), _rule("a Slack user token (xoxp-...)", r"^(?:xoxe\.)?xoxp-[A-Za-z0-9-]{10,}$")),
    (re.compile(r"SLACK.*APP.*TOKEN", re.I), _rule("a Slack app token (xapp-...)", r"^xapp-[A-Za-z0-9-]{10,}$")),
    # Any Slack token family (bot, user, app, and the xoxc-/xoxd- session tokens some servers use).
    (re.compile(r"SLACK.*TOKEN", re.I), _rule("a Slack token (xoxb-, xoxp-, xoxc-, xoxd- or xapp-...)",
                                             r"^(?:xoxe\.)?(?:xox[a-z]|xapp)-[A-Za-z0-9%-]{10,}$")),
    (re.compile(r"^(?:GITHUB|GH)_.*(?:TOKEN|PAT)", re.I), _rule(
        "a GitHub token (ghp_..., github_pat_..., gho_/ghu_/ghs_... or a 40-character legacy token)",
        r"^(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,251}|[a-f0-9]{40})$",
    )),
    (re.compile(r"^OPENAI.*(?:API_?KEY|TOKEN)$", re.I), _rule("an OpenAI API key (sk-...)", r"^sk-[A-Za-z0-9_-]{20,}$")),
    (re.compile(r"^ANTHROPIC.*(?:API_?KEY)$", re.I), _rule("an Anthropic API key (sk-ant-...)", r"^sk-ant-[A-Za-z0-9_-]{20,}$")),
    # Integration tokens only: an OAuth access token for Notion's hosted server has another shape.
    (re.compile(r"^NOTION_(?:API_?KEY|TOKEN|API_TOKEN|SECRET|INTEGRATION_(?:TOKEN|SECRET)|INTERNAL_INTEGRATION_(?:TOKEN|SECRET))$", re.I), _rule(
        "a Notion integration token (secret_... or ntn_...)", r"^(?:secret_|ntn_)[A-Za-z0-9]{20,}$"
    )),
    (re.compile(r"^STRIPE.*PUBLISHABLE", re.I), _rule("a Stripe publishable key (pk_live_/pk_test_...)", r"^pk_(?:live|test)_[A-Za-z0-9]{10,}$")),
    (re.compile(r"^STRIPE.*(?:SECRET|API_?KEY)", re.I), _rule(
        "a Stripe secret or restricted key (sk_live_, sk_test_, rk_live_ or rk_test_...)",
        r"^[sr]k_(?:live|test)_[A-Za-z0-9]{10,}$",
    )),
    (re.compile(r"^AWS_ACCESS_KEY_ID$", re.I), _rule("an AWS access key id (AKIA/ASIA + 16 characters)", r"^(?:AKIA|ASIA)[A-Z0-9]{16}$")),
    (re.compile(r"^AWS_SECRET_ACCESS_KEY$", re.I), _rule("an AWS secret access key (40 characters)", r"^[A-Za-z0-9/+=]{40}$")),
]

# Known non-secret prefixes: a masked hint may show them (they say which kind of token it is, nothing more).
KNOWN_PREFIXES = (
    "xoxe.xoxb-", "xoxe.xoxp-", "github_pat_", "sk-ant-", "sk-proj-", "sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_",
    "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xapp-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "secret_", "ntn_",
    "AKIA", "ASIA", "sk-",
)
MASK_MIN_LENGTH = 20


def mask(value: object) -> str:
    """A display hint: known prefix + last 4 characters for long single-line values, else "set".

    The last four characters of a long random token are what providers themselves show; a short value
    (a password, a PIN) shows nothing."""
    text = value if isinstance(value, str) else ""
    if len(text) < MASK_MIN_LENGTH or "\n" in text:
        return "set"
    prefix = next((p for p in KNOWN_PREFIXES if text.startswith(p)), "")
    return f"{prefix}...{text[-4:]}"


def is_safe_key(key: object) -> bool:
    """A credential name we may store and echo: well formed, and not shaped like a secret (a value pasted into
    the name's place, e.g. {"xoxb-...": "..."}, must not be kept or shown in plain text)."""
    return isinstance(key, str) and bool(KEY_RE.match(key)) and redact(key) == key


def _norm_key(key: str) -> str:
    return key.upper().replace("-", "_")


def _looks_like(key: str, suffixes: Iterable[str]) -> bool:
    k = _norm_key(key)
    return any(k == s or k.endswith("_" + s) for s in suffixes)


def _check_url(value: str) -> str | None:
    if any(ch.isspace() for ch in value):
        return "must be a URL without spaces"
    parts = urlsplit(value)
    if not parts.scheme or not _SCHEME_RE.match(parts.scheme):
        return "must be a URL with a scheme (e.g. https://host/path)"
    if parts.scheme.lower() in ("http", "https", "ws", "wss") and not parts.hostname:
        return "must be a URL with a host (e.g. https://host/path)"
    if not (parts.netloc or parts.path):
        return "must be a URL (e.g. https://host/path)"
    return None


def _check_email(value: str) -> str | None:
    return None if _EMAIL_RE.match(value) and len(value) <= 254 else "must be an email address (name@example.com)"


def _check_path(value: str) -> str | None:
    if "\n" in value or "\r" in value:
        return "must be a single-line file path"
    path = PurePosixPath(value)
    if ".." in path.parts:
        return "must be a file path without '..' components"
    if len(value) > 4096:
        return "must be a file path of at most 4096 characters"
    return None


def _check_number(value: str) -> str | None:
    try:
        float(value)
    except ValueError:
        return "must be a number"
    return None


def _check_boolean(value: str) -> str | None:
    return None if value.lower() in {"true", "false", "1", "0", "yes", "no", "on", "off"} else "must be true or false"


_FORMAT_CHECKS = {
    "url": _check_url,
    "uri": _check_url,
    "email": _check_email,
    "filepath": _check_path,
    "file_path": _check_path,
    "path": _check_path,
    "number": _check_number,
    "integer": _check_number,
    "boolean": _check_boolean,
}


def _catalogue_regex(pattern: str) -> re.Pattern | None:
    if not pattern or len(pattern) > 300 or _NESTED_QUANTIFIER_RE.search(pattern):
        return None
    try:
        return re.compile(pattern)
    except re.error:
        return None


def normalise(value: object) -> tuple[str | None, str | None]:
    """(clean value, None) or (None, reason). Numbers and booleans from JSON become their JSON text."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return None, "must be a string"
    value = value.strip()
    if not value:
        return None, "is empty"
    max_chars = settings.CREDENTIAL_VALUE_MAX_CHARS
    if len(value) > max_chars:
        return None, f"is longer than {max_chars} characters"
    if _CONTROL_RE.search(value):
        return None, "contains control or invisible characters"
    return value, None


def check_value(key: str, value: str, requirement: dict | None, curated: dict | None = None) -> str | None:
    """None if the (normalised) value is acceptable for this key, else the reason (never the value). `curated`:
    what the caller's rules know about the key (a `pattern`, a `service_name`; see mcpagent.vault.rules)."""
    requirement = requirement or {}
    fmt = str(requirement.get("format") or "").lower()
    if fmt in _FORMAT_CHECKS and (reason := _FORMAT_CHECKS[fmt](value)):
        return reason
    choices = [str(c) for c in requirement.get("choices") or []]
    if choices and value not in choices:
        return f"must be one of: {', '.join(choices[:20])}"
    for key_re, rule in PROVIDER_RULES:
        if key_re.search(key):
            if not rule.regex.match(value):
                return f"does not look like {rule.name}"
            break
    regex = _catalogue_regex(str(requirement.get("pattern") or ""))
    if regex is not None and not regex.search(value):
        return "does not have the expected format for this setting"
    curated = curated or {}
    regex = _catalogue_regex(str(curated.get("pattern") or ""))
    if regex is not None and not regex.search(value):
        service = curated.get("service_name") or "the service"
        return f"does not have the format {service} uses for this setting"
    kind = str(requirement.get("kind") or "").lower()
    if not fmt:
        if kind == "url" or _looks_like(key, ("URL", "URI", "ENDPOINT")):
            return _check_url(value)
        if _looks_like(key, ("EMAIL", "EMAIL_ADDRESS")):
            return _check_email(value)
        if kind == "file_path" or _looks_like(key, ("PATH", "FILE", "DIR", "DIRECTORY")):
            return _check_path(value)
    return None
