"""Request ids (X-Request-ID honoured or generated, echoed) and the JSON request log lines."""

import io
import json
import logging
import time
import uuid
from contextlib import contextmanager

import pytest

from agents_app.models import Agent
from mcpagent.logging_filters import RedactSecretsFilter


@contextmanager
def stderr_lines():
    """The lines the configured root handler (settings.LOGGING) writes, parsed as JSON."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters))
    stream = io.StringIO()
    old = handler.setStream(stream)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        handler.setStream(old)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


def test_request_id_from_the_caller_is_echoed(anon_api, db):
    response = anon_api.get("/api/health", HTTP_X_REQUEST_ID="abc")
    assert response["X-Request-ID"] == "abc"


def test_request_id_is_generated_when_absent(anon_api, db):
    first, second = anon_api.get("/api/health")["X-Request-ID"], anon_api.get("/api/health")["X-Request-ID"]
    assert uuid.UUID(first) and uuid.UUID(second) and first != second


@pytest.mark.parametrize("bad", ["a" * 129, "has space", "semi;colon", "-leading-dash", "x\u00e9"])
def test_unsafe_request_id_is_replaced(anon_api, db, bad):
    echoed = anon_api.get("/api/health", HTTP_X_REQUEST_ID=bad)["X-Request-ID"]
    assert echoed != bad and uuid.UUID(echoed)


def test_errors_carry_the_request_id_too(api):
    assert api.get("/api/no-such-endpoint", HTTP_X_REQUEST_ID="req-404")["X-Request-ID"] == "req-404"


def test_request_log_lines_are_json_with_request_fields_and_no_secrets(api):
    with stderr_lines() as lines:
        response = api.get("/api/servers/search?q=secret-query-text", HTTP_X_REQUEST_ID="req-42",
                           HTTP_USER_AGENT="pytest")
    ours = [line for line in lines if line.get("request_id") == "req-42"]
    finished = next(line for line in ours if line["event"] == "request_finished")
    assert finished["method"] == "GET"
    assert finished["request"] == "GET /api/servers/search"  # never the query string
    assert finished["route"] == "api/servers/search"
    assert finished["status"] == response.status_code
    assert isinstance(finished["duration_ms"], float) and finished["duration_ms"] >= 0
    assert finished["client_id"] == str(api.client_obj.pk)
    assert finished["level"] in ("info", "warning") and finished["timestamp"]
    assert any(line["event"] == "request_started" for line in ours)
    text = json.dumps(lines)
    assert api.raw_key not in text and "secret-query-text" not in text


def test_unauthenticated_request_has_no_client_id(anon_api, db):
    with stderr_lines() as lines:
        anon_api.get("/api/health", HTTP_X_REQUEST_ID="req-anon")
    finished = next(line for line in lines if line["event"] == "request_finished")
    assert finished["request_id"] == "req-anon" and finished["status"] == 200 and "client_id" not in finished


@pytest.mark.urls("tests.mcpagent.urls_with_faults")
def test_plain_logging_during_a_request_carries_the_request_id(api):
    with stderr_lines() as lines:
        assert api.get("/api/test-crash", HTTP_X_REQUEST_ID="req-crash").status_code == 500
    # A plain `logging` line of our code, with its traceback, is a JSON line with the request's id and client.
    crash = next(line for line in lines if line["event"].startswith("unhandled error"))
    assert crash["request_id"] == "req-crash" and crash["client_id"] == str(api.client_obj.pk)
    assert crash["logger"] == "mcpagent.errors" and "Traceback" in crash["exception"]


@pytest.mark.worker
def test_tasks_sent_by_a_request_log_its_request_id(celery_worker, api, settings):
    settings.AGENT_CREATE_WAIT_SECONDS = 0
    body = {"mcp_config": {"mcpServers": {"time": {"command": "python", "args": ["-m", "mcp_server_time"]}}},
            "user_prompt": "x", "workflow": "x", "model": "passthrough"}
    response = api.post("/api/agents/create", body, format="json", HTTP_X_REQUEST_ID="req-into-task")
    assert response.status_code == 202, response.content
    agent_id = response.json()["agent_id"]
    deadline = time.monotonic() + 60
    while Agent.objects.get(pk=agent_id).status not in ("ready", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # the task's closing line is written just after the status
    worker_lines = [json.loads(line) for line in celery_worker.log_path.read_text().splitlines()
                    if line.startswith("{")]
    task_lines = [line for line in worker_lines if line.get("request_id") == "req-into-task"]
    assert {"task_started", "task_succeeded"} <= {line["event"] for line in task_lines}, worker_lines[-5:]
    assert all(line["client_id"] == str(api.client_obj.pk) and line["task_id"] for line in task_lines)
