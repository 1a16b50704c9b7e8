"""Errors reach Sentry (a fake ingest endpoint on 127.0.0.1 speaking the envelope protocol) with the request id,
and no secret a request carried, nor the worker's own, is anywhere in the bytes sent."""

import json

import pytest
import sentry_sdk
from celery import shared_task
from django.conf import settings
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient
from rest_framework.views import APIView

from mcpagent.sentry import init_sentry
from mcpagent.urls import urlpatterns as real_urlpatterns
from tests.fakes.sentry import FakeSentry

SLACK_TOKEN = "xoxb-1234567890-abcdefghijklmnop"
PLAIN_SECRET = "plain-secret-value-7781-zq"
QUERY_SECRET = "query-secret-5512-zq"
HEADER_SECRET = "header-secret-9043-zq"


class CrashWithCredentialsApi(APIView):
    """Fails while holding a request's credentials, and names a Slack token and the worker's own key."""

    authentication_classes = []
    permission_classes = []

    def post(self, request):
        credentials = request.data["credentials"]
        raise RuntimeError(f"could not use {credentials['slack']['SLACK_BOT_TOKEN']} (key {settings.SECRET_KEY})")


def crash_page(request):
    raise ValueError(f"page failed for {SLACK_TOKEN}")


urlpatterns = [
    path("api/test-sentry-crash", CrashWithCredentialsApi.as_view()),
    path("test-sentry-page", crash_page),
    *real_urlpatterns,
]


@pytest.fixture
def sentry():
    with FakeSentry() as fake:
        init_sentry(dsn=fake.dsn, environment="test")
        try:
            yield fake
        finally:
            sentry_sdk.flush(timeout=5)
            sentry_sdk.get_client().close()
            sentry_sdk.init()  # no DSN: later tests send nothing


def _all_bytes(fake: FakeSentry) -> bytes:
    return b"\n".join(fake.raw)


@pytest.mark.urls(__name__)
def test_api_error_reaches_sentry_tagged_with_request_id_and_without_secrets(sentry):
    api = APIClient()
    response = api.post(
        f"/api/test-sentry-crash?api_key={QUERY_SECRET}",
        data=json.dumps({"credentials": {"slack": {"SLACK_BOT_TOKEN": SLACK_TOKEN}, "db": {"PASSWORD": PLAIN_SECRET}}}),
        content_type="application/json",
        HTTP_X_REQUEST_ID="req-sentry-api-1",
        HTTP_AUTHORIZATION=f"Bearer {PLAIN_SECRET}",
        HTTP_X_API_KEY=HEADER_SECRET,
    )
    assert response.status_code == 500
    assert response["X-Request-ID"] == "req-sentry-api-1"
    sentry_sdk.flush(timeout=5)
    events = sentry.wait_for_events(1)

    assert len(events) == 1, [e.get("message") or e.get("logentry") for e in events]
    event = events[0]
    assert event["tags"]["request_id"] == "req-sentry-api-1"
    assert event["environment"] == "test"
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError"
    assert "could not use ***" in exception["value"]
    sent = _all_bytes(sentry)
    for secret in (SLACK_TOKEN, PLAIN_SECRET, QUERY_SECRET, HEADER_SECRET, settings.SECRET_KEY):
        assert secret.encode() not in sent, f"{secret[:6]}... reached Sentry"
    # The body and the query string are never sent; the path is.
    request = event.get("request", {})
    assert "data" not in request and "query_string" not in request
    assert request.get("url", "/api/test-sentry-crash").endswith("/api/test-sentry-crash")
    assert all(sentry.auth_headers), "every envelope carries the DSN's public key"


@pytest.mark.urls(__name__)
def test_page_error_reaches_sentry_through_django_integration(sentry):
    response = Client(raise_request_exception=False).get("/test-sentry-page", HTTP_X_REQUEST_ID="req-sentry-page-2")
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)
    events = sentry.wait_for_events(1)

    event = next(e for e in events if e.get("tags", {}).get("request_id") == "req-sentry-page-2")
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert SLACK_TOKEN.encode() not in _all_bytes(sentry)


def test_without_dsn_nothing_is_initialised():
    init_sentry(dsn="")
    assert not sentry_sdk.get_client().dsn


@shared_task(name="tests.sentry_failing_task")
def failing_task(token: str, note: str = "") -> None:
    raise RuntimeError(f"task failed with {token}")


def test_task_error_reaches_sentry_without_secrets(sentry):
    # Without a broker (tests) tasks run in-process through Celery's own tracer, as a worker runs them.
    with pytest.raises(RuntimeError):
        failing_task.delay(SLACK_TOKEN, note=PLAIN_SECRET)
    sentry_sdk.flush(timeout=5)
    events = sentry.wait_for_events(1)
    assert any(e["exception"]["values"][-1]["type"] == "RuntimeError" for e in events if "exception" in e)
    assert SLACK_TOKEN.encode() not in _all_bytes(sentry)
    assert PLAIN_SECRET.encode() not in _all_bytes(sentry), "a task's arguments are never sent"
