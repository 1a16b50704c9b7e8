"""GET /api/health: can this service do its work right now? 200 if so, 503 if not, with each part's state."""

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
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


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField(), "checks": serializers.DictField()}),
            503: inline_serializer("HealthDown", {"status": serializers.CharField(), "checks": serializers.DictField()}),
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
        return Response(body, status=200 if ok else 503)
