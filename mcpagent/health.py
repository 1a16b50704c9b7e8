"""GET /api/health: can this service do its work right now? 200 if so, 503 if not.

Everyone gets the status; each part's state (versions, worker counts, error messages) only staff signed in to
the admin and callers sending `Authorization: Bearer <HEALTH_DETAILS_TOKEN>`: those details help an attacker.
"""

import hmac
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


# Checks the apps add (apps depend on the core, not the other way round): {name: () -> {"ok": bool, ...}}.
_EXTRA_CHECKS: dict[str, Callable[[], dict]] = {}


def register_check(name: str, check: Callable[[], dict]) -> None:
    _EXTRA_CHECKS[name] = check


def _check_database() -> tuple[dict, dict]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except Exception as exc:  # the database being down is exactly what we report
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return {"ok": False, "error": message[:300]}, {"ok": False, "error": "database unreachable"}
    database = {"ok": True, "embedded": settings.EMBEDDED_DATABASE}
    if row is None:
        return database, {"ok": False, "error": "pgvector extension not installed; run `python manage.py migrate`"}
    return database, {"ok": True, "version": row[0]}


def _check_broker_and_workers() -> tuple[dict, dict]:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        eager = {"ok": True, "mode": "eager", "detail": "no broker configured: tasks run in-process"}
        return eager, dict(eager)
    from mcpagent.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return {"ok": False, "error": f"broker unreachable: {exc.__class__.__name__}"}, {"ok": False, "count": 0}
    try:
        replies = app.control.inspect(timeout=1.0).ping() or {}
    except Exception:
        replies = {}
    workers = {"ok": bool(replies), "count": len(replies)}
    if not replies:
        workers["error"] = "no Celery worker answered: start one (`celery -A mcpagent worker`)"
    return {"ok": True, "mode": "redis"}, workers


def may_see_details(request) -> bool:
    user = request.user
    if user is not None and user.is_active and user.is_staff:
        return True
    token = settings.HEALTH_DETAILS_TOKEN
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


_DETAILS_HELP = "Only for staff sessions and HEALTH_DETAILS_TOKEN."


class HealthApi(APIView):
    # A staff member's admin session shows the details; an API key has no say here.
    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]
    throttle_classes = []  # load balancers and orchestrators poll it from a few addresses

    @extend_schema(
        responses={
            status: inline_serializer(name, {
                "status": serializers.CharField(),
                "checks": serializers.DictField(required=False, help_text=_DETAILS_HELP),
                "elapsed_ms": serializers.FloatField(required=False, help_text=_DETAILS_HELP),
            })
            for status, name in ((200, "Health"), (503, "HealthDown"))
        },
        auth=[],
    )
    def get(self, request):
        started = time.perf_counter()
        database, pgvector = _check_database()
        broker, workers = _check_broker_and_workers()
        checks = {"database": database, "pgvector": pgvector, "broker": broker, "workers": workers}
        checks.update({name: check() for name, check in _EXTRA_CHECKS.items()})
        ok = all(part["ok"] for part in checks.values())
        body = {
            "status": "ok" if ok else "unavailable",
            "checks": checks,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if not may_see_details(request):
            body = {"status": body["status"]}
        return Response(body, status=200 if ok else 503)
