"""One error shape for every 4xx/5xx from the API: {"error": {"code", "message", "details"}}."""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError as DjangoValidationError
from django.db import InterfaceError as DatabaseInterfaceError, OperationalError as DatabaseOperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

from mcpagent.request_logging import loggable_path

logger = logging.getLogger("mcpagent.errors")


class ApplicationError(Exception):
    """An error our code raises on purpose; rendered as-is (code, message, details) with its HTTP status."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400, details: Any = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details


class NotFound(ApplicationError):
    def __init__(self, message: str = "Not found.", *, details: Any = None):
        super().__init__(message, code="not_found", status=404, details=details)


def error_body(code: str, message: str, details: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


# A dependency that is down for a moment (the database restarting, Redis unreachable): the client should retry,
# and nothing was changed (the request's transaction is rolled back).
_UNAVAILABLE = (DatabaseOperationalError, DatabaseInterfaceError, RedisConnectionError, RedisTimeoutError,
                BrokerError)
UNAVAILABLE_RETRY_AFTER_SECONDS = 2


def _unavailable(exc: Exception, where: str) -> tuple[dict, int, dict]:
    logger.warning("a dependency is unavailable (%s) in %s", type(exc).__name__, where)
    return (error_body("unavailable", "A service this request needs is unavailable; try again shortly.",
                       {"retry_after_seconds": UNAVAILABLE_RETRY_AFTER_SECONDS}),
            503, {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)})


_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER. Unknown exceptions become a 500 without a trace (logged server-side)."""
    if isinstance(exc, ApplicationError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "Request body too large."), status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)

    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        from mcpagent.throttling import throttle_auth_failure

        exc = throttle_auth_failure(context.get("request"), exc)

    if isinstance(exc, exceptions.APIException):
        set_rollback()
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, exceptions.ValidationError):
            body = error_body(
                "validation_error", "The request is not valid; see details per field.", _without_input(exc.detail, context)
            )
        else:
            code = exc.get_codes() if isinstance(exc.get_codes(), str) else _STATUS_CODES.get(exc.status_code, "error")
            details = {"retry_after_seconds": int(exc.wait)} if isinstance(exc, exceptions.Throttled) and exc.wait else None
            body = error_body(code, str(exc.detail), details)
        return Response(body, status=exc.status_code, headers=headers)

    set_rollback()
    if isinstance(exc, _UNAVAILABLE):
        body, status_code, headers = _unavailable(exc, context.get("view").__class__.__name__)
        return Response(body, status=status_code, headers=headers)
    logger.error("unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
    return Response(error_body("server_error", "Internal server error."), status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def _without_input(detail: Any, context: dict) -> Any:
    """Validation details never quote the request (DRF's '"{input}" is not a valid choice.' could echo a secret)."""
    from mcpagent.logging_filters import scrub_echoed_input

    request = context.get("request")
    try:
        data = request.data if request is not None else None
    except Exception:  # the body did not parse: nothing of it can be quoted back
        data = None
    return scrub_echoed_input(detail, data)


class ApiErrorMiddleware:
    """Gives Django-level errors under /api/ (unknown URL, oversized body, crash outside DRF) the same JSON shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            code = _STATUS_CODES.get(response.status_code, "error")
            message = {404: "Not found.", 400: "Bad request.", 413: "Request body too large."}.get(
                response.status_code, "Request failed."
            )
            return JsonResponse(error_body(code, message), status=response.status_code)
        return response

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(error_body("payload_too_large", "Request body too large."), status=413)
        if isinstance(exception, Http404):
            return JsonResponse(error_body("not_found", "Not found."), status=404)
        if isinstance(exception, _UNAVAILABLE):
            body, status_code, headers = _unavailable(exception, loggable_path(request.path))
            return JsonResponse(body, status=status_code, headers=headers)
        logger.error("unhandled error on %s", loggable_path(request.path), exc_info=exception)
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
