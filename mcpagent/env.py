"""The one place configuration is read from the environment. Every knob has a documented default (README).

Any knob can also be read from a file: `<NAME>_FILE=/path` (the Docker-secrets convention) stands for `NAME`
set to that file's content, so secrets need not be in the environment at all.
"""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# This process's own secrets. Settings hold them once read; `remove_secrets_from_environ` then takes them out of
# os.environ so that no process started from here (an MCP server, a launcher, a tool) inherits them.
PROCESS_SECRETS = (
    "SECRET_KEY", "ENCRYPTION_KEY", "ENCRYPTION_KEY_FALLBACKS", "ANTHROPIC_API_KEY", "OPENAI_API_KEY",
    "MCPAGENT_DB_PASSWORD", "DATABASE_URL", "SENTRY_DSN",
)
_removed_secrets: dict[str, str] = {}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    path = os.environ.get(f"{name}_FILE")
    if path is None:
        return value
    if value is not None:
        raise ImproperlyConfigured(f"set {name} or {name}_FILE, not both")
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().rstrip("\r\n")  # files written by `echo` or editors end with a newline
    except OSError as error:
        raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {error.strerror}") from None


def env_str(name: str, default: str = "") -> str:
    raw = _raw(name)
    return default if raw is None else raw


def env_bool(name: str, default: bool = False) -> bool:
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = _raw(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = _raw(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = _raw(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def remove_secrets_from_environ() -> None:
    """Take PROCESS_SECRETS out of os.environ (the `_FILE` paths stay: they name files, they are not secrets)."""
    for name in PROCESS_SECRETS:
        if name in os.environ:
            _removed_secrets[name] = os.environ.pop(name)


def environ_for_own_process() -> dict[str, str]:
    """os.environ with the secrets taken out of it put back: the environment for another process of this service
    (gunicorn, a Celery worker, runserver's reloaded server), which reads the settings again. Never for an MCP
    server or any other program."""
    return {**_removed_secrets, **os.environ}
