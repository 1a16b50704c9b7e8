"""Request ids and structured request logs (django-structlog), as JSON lines through settings.LOGGING.

Every request gets a request id: the caller's `X-Request-ID` when it is a sane token, else a new UUID. It is
bound to the log context (so every line logged while handling the request carries it, and Celery tasks the
request sends carry it too: django-structlog copies the context into the task headers) and echoed in the
response's `X-Request-ID`. The closing `request_finished` line has method, path, route, status, duration and
the API client's id; never a body, a query string or a header value other than the user agent.
"""

import re
import time
import uuid

import structlog
from django.dispatch import receiver
from django_structlog import signals
from django_structlog.middlewares import RequestMiddleware

REQUEST_ID_HEADER = "X-Request-ID"
# Letters, digits and . _ : - only, at most 128: the id is copied into logs and headers of other systems.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Paths whose last segment is a secret (a webhook trigger's token): logged masked.
_SECRET_PATH_RE = re.compile(r"^(/api/hooks/)[^/]+")


def request_id_from(header_value: str | None) -> str:
    """The caller's request id if it is acceptable, else a new one."""
    if header_value and _REQUEST_ID_RE.fullmatch(header_value):
        return header_value
    return str(uuid.uuid4())


class RequestLogMiddleware(RequestMiddleware):
    """django-structlog's middleware, echoing the request id and logging the path without its query string."""

    async_capable = False  # the project runs under WSGI; the echo below is written for the sync path

    def __call__(self, request):
        response = super().__call__(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response

    @staticmethod
    def format_request(request) -> str:
        return f"{request.method} {loggable_path(request.path)}"


def loggable_path(path: str) -> str:
    return _SECRET_PATH_RE.sub(r"\1***", path)


def bind_client_id(client) -> None:
    """Put the authenticated API client on every later log line of this request (and its tasks)."""
    structlog.contextvars.bind_contextvars(client_id=str(client.pk))


@receiver(signals.bind_extra_request_metadata)
def _bind_request_id(request, logger, log_kwargs, **kwargs) -> None:
    # Sent by the middleware right after it bound its own random id, before the `request_started` line.
    request.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    request.request_started_at = time.perf_counter()
    structlog.contextvars.bind_contextvars(request_id=request.request_id)
    log_kwargs["method"] = request.method


@receiver(signals.bind_extra_request_finished_metadata)
def _add_response_fields(request, logger, response, log_kwargs, **kwargs) -> None:
    match = getattr(request, "resolver_match", None)
    log_kwargs["method"] = request.method
    log_kwargs["route"] = match.route if match else None
    log_kwargs["status"] = log_kwargs.pop("code")
    log_kwargs["duration_ms"] = round((time.perf_counter() - request.request_started_at) * 1000, 1)


@receiver(signals.bind_extra_request_failed_metadata)
def _add_failure_fields(request, logger, exception, log_kwargs, **kwargs) -> None:
    log_kwargs["method"] = request.method
    log_kwargs["status"] = log_kwargs.pop("code")
    log_kwargs["duration_ms"] = round((time.perf_counter() - request.request_started_at) * 1000, 1)

