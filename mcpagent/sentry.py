"""Error reporting to Sentry (sentry-sdk), on only when SENTRY_DSN is set; secrets never leave in an event.

What is sent: the exception, its stack (without local variables: a frame's locals can hold a user's credential
under any name), the request's method, URL path and non-sensitive headers, log breadcrumbs, and tags for the
request id, API client and Celery task of the log context (so an event can be matched with its JSON log lines).
What is not: request bodies, query strings, cookies, user details (send_default_pii=False), a task's arguments.

Every event then passes two scrubbers before it is sent:
- sentry's EventScrubber, recursive, with its default denylist plus our secret field names: the value of any
  key so named (headers, extra, breadcrumb data, ...) is replaced;
- before_send: every string left (messages, exception values, breadcrumbs, keys too) goes through our Redactor
  (the worker's own secrets and their encodings, known token shapes, Bearer/Basic credentials, passwords in URLs,
  `--token VALUE` options) and the log filter's `name=value` redaction.
"""

from functools import cache
from typing import Any

import sentry_sdk
import structlog
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from mcpagent.logging_filters import redact as redact_named_values
from mcpagent.redaction import Redactor

# Field names whose values are secrets in our API, our settings and the MCP configs we handle.
SECRET_FIELD_NAMES = [
    "credential", "credentials", "value", "values", "api_key", "apikey", "x-api-key", "access_token",
    "refresh_token", "client_secret", "private_key", "secret_key", "encryption_key", "encryption_key_fallbacks",
    "anthropic_api_key", "openai_api_key", "database_url", "sentry_dsn", "db_password", "mcpagent_db_password",
    "metrics_token", "health_details_token", "env", "headers", "content", "key_hash",
]
# Tags copied from the structlog context (bound per request by mcpagent.request_logging, per task by
# django-structlog's Celery receivers).
CONTEXT_TAGS = ("request_id", "client_id", "task_id")
_REQUEST_FIELDS_DROPPED = ("data", "query_string", "cookies", "env")


@cache
def _redactor() -> Redactor:
    # The worker's secrets are fixed once settings are read: build the (large) pattern once per process.
    return Redactor()


def _redact_strings(data: Any) -> Any:
    if isinstance(data, str):
        return redact_named_values(_redactor().redact(data))
    if isinstance(data, dict):
        return {_redact_strings(key): _redact_strings(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_redact_strings(value) for value in data]
    return data


def before_send(event: dict, hint: dict) -> dict:
    """Tag the event with the log context's ids, drop what may carry input, redact every string."""
    context = structlog.contextvars.get_contextvars()
    tags = event.setdefault("tags", {})
    for name in CONTEXT_TAGS:
        if context.get(name) and name not in tags:
            tags[name] = str(context[name])
    job = (event.get("extra") or {}).get("celery-job")
    if isinstance(job, dict):  # a task's arguments are input: ids by our rule, but never sent
        job.pop("args", None)
        job.pop("kwargs", None)
    request = event.get("request")
    if isinstance(request, dict):
        for field in _REQUEST_FIELDS_DROPPED:
            request.pop(field, None)
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    return _redact_strings(event)


def before_breadcrumb(crumb: dict, hint: dict) -> dict:
    return _redact_strings(crumb)


def init_sentry(*, dsn: str, environment: str = "", release: str = "", traces_sample_rate: float = 0.0) -> None:
    """Start the Sentry client of this process (web or worker); a no-op without a DSN."""
    if not dsn:
        return
    # Its `request_finished` line is logged at error level for a 5xx: the error itself is already an event.
    ignore_logger("django_structlog.middlewares.request")
    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        release=release or None,
        integrations=[DjangoIntegration(), CeleryIntegration(), LoggingIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + SECRET_FIELD_NAMES, recursive=True),
        before_send=before_send,
        before_breadcrumb=before_breadcrumb,
        traces_sample_rate=traces_sample_rate,
    )
