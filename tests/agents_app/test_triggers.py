"""Webhook triggers: created with a secret URL and signing secret shown once, a signed call starts a run with the
payload, a bad or missing signature is a 401 that starts nothing, replays and floods are refused, secrets are
stored encrypted and never shown again, and another client sees none of it. Eager Celery, in-process."""

import json

import pytest
from django.db import connection

from agents_app.models import AgentRun, AgentTrigger
from agents_app.triggers import sign
from tests.agents_app.conftest import TIME_SERVER, script
from tests.agents_app.test_apis import create, error_of
from tests.sessions_app.secretscan import assert_no_plaintext_in_db


@pytest.fixture
def agent_id(api) -> str:
    return create(api, {"time": TIME_SERVER}, model="passthrough")["agent_id"]


def make_trigger(api, agent_id, **body) -> dict:
    response = api.post(f"/api/agents/{agent_id}/triggers", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def fire(anon_api, trigger: dict, body: bytes, *, signature: str | None = None, delivery: str | None = None):
    path = trigger["url"].split("testserver", 1)[1]
    headers = {}
    if signature is not None:
        headers["HTTP_X_SIGNATURE_256"] = signature
    if delivery is not None:
        headers["HTTP_X_DELIVERY_ID"] = delivery
    return anon_api.post(path, body, content_type="application/json", **headers)


def test_signed_call_runs_with_the_payload_bad_signature_is_401_and_replay_is_refused(api, anon_api, agent_id):
    trigger = make_trigger(api, agent_id, name="new invoices")
    assert trigger["signed"] is True and len(trigger["signing_secret"]) == 64
    assert trigger["url"].startswith("http://testserver/api/hooks/")
    body = json.dumps({"invoice": 42, "from": "acme"}).encode()

    for bad in (None, "sha256=" + "0" * 64, sign("wrong-secret-0123456789", body), "sha1=abc"):
        error_of(fire(anon_api, trigger, body, signature=bad), 401, "bad_signature")
    assert not AgentRun.objects.exists()

    fired = fire(anon_api, trigger, body, signature=sign(trigger["signing_secret"], body), delivery="d-1")
    assert fired.status_code == 202, fired.content
    run = AgentRun.objects.get()
    assert str(run.id) == fired.json()["run_id"]
    assert run.trigger == AgentRun.Trigger.WEBHOOK and run.status == AgentRun.Status.SUCCEEDED
    assert '"invoice": 42' in run.message and run.message.startswith("Get the current time")
    shown = api.get(f"/api/agents/{agent_id}/runs/{run.id}").json()
    assert shown["trigger"] == "webhook" and shown["trigger_id"] == trigger["trigger_id"]

    # The same call again, or the same delivery id with another body, starts nothing.
    error_of(fire(anon_api, trigger, body, signature=sign(trigger["signing_secret"], body), delivery="d-2"),
             409, "replayed_delivery")
    other = b'{"invoice": 43}'
    error_of(fire(anon_api, trigger, other, signature=sign(trigger["signing_secret"], other), delivery="d-1"),
             409, "replayed_delivery")
    assert AgentRun.objects.count() == 1


def test_secrets_are_shown_once_and_stored_encrypted(api, agent_id):
    trigger = make_trigger(api, agent_id, signing_secret="my-own-signing-secret-123")
    assert trigger["signing_secret"] == "my-own-signing-secret-123"
    token = trigger["url"].rsplit("/", 1)[1]
    listed = api.get(f"/api/agents/{agent_id}/triggers").json()["triggers"]
    assert [t["trigger_id"] for t in listed] == [trigger["trigger_id"]]
    assert "signing_secret" not in listed[0] and "url" not in listed[0] and token not in str(listed)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM agents_app_agenttrigger")
        raw = str(cursor.fetchall())
    assert token not in raw and "my-own-signing-secret-123" not in raw
    assert AgentTrigger.objects.get().signing_secret == b"my-own-signing-secret-123"
    error_of(api.post(f"/api/agents/{agent_id}/triggers", {"signing_secret": "short"}, format="json"), 400)


def test_unsigned_trigger_flood_is_429_and_unknown_token_404(api, anon_api, agent_id, settings):
    settings.TRIGGER_MAX_PER_MINUTE = 2
    trigger = make_trigger(api, agent_id, signed=False)
    assert trigger["signing_secret"] is None and trigger["signed"] is False
    assert fire(anon_api, trigger, b'{"n": 1}').status_code == 202
    assert fire(anon_api, trigger, b'{"n": 2}').status_code == 202
    error_of(fire(anon_api, trigger, b'{"n": 3}'), 429, "rate_limited")
    assert AgentRun.objects.count() == 2
    error_of(anon_api.post("/api/hooks/not-a-token", b"{}", content_type="application/json"), 404)
    settings.TRIGGER_MAX_PAYLOAD_BYTES = 10
    error_of(fire(anon_api, trigger, b'{"n": 12345678}'), 413, "payload_too_large")


def test_delete_and_isolation(api, other_api, anon_api, agent_id):
    trigger = make_trigger(api, agent_id)
    url = f"/api/agents/{agent_id}/triggers"
    error_of(other_api.get(url), 404, "not_found")
    error_of(other_api.post(url, {}, format="json"), 404, "not_found")
    error_of(other_api.delete(f"{url}/{trigger['trigger_id']}"), 404, "not_found")
    other_agent = create(other_api, {"time": TIME_SERVER}, model="passthrough")["agent_id"]
    error_of(other_api.delete(f"/api/agents/{other_agent}/triggers/{trigger['trigger_id']}"), 404, "not_found")
    assert AgentTrigger.objects.filter(agent_id=agent_id).exists()

    assert api.delete(f"{url}/{trigger['trigger_id']}").status_code == 204
    body = b"{}"
    error_of(fire(anon_api, trigger, body, signature=sign(trigger["signing_secret"], body)), 404)
    make_trigger(api, agent_id)
    assert api.delete(f"/api/agents/{agent_id}").status_code == 204
    assert not AgentTrigger.objects.exists()


def test_a_webhook_body_with_the_agents_credential_is_stored_masked(api, anon_api, test_servers):
    pasted = "plain-value-5c3b1a9e7f2d"
    echo = {**script("echo_args"), "env": {"API_KEY": pasted}}
    agent_id = create(api, {"echo": echo}, model="passthrough")["agent_id"]
    trigger = make_trigger(api, agent_id, signed=False)
    body = json.dumps({"note": f"rotated key {pasted}"}).encode()
    fired = fire(anon_api, trigger, body)
    assert fired.status_code == 202, fired.content
    run = AgentRun.objects.get()
    assert "rotated key ***" in run.message and pasted not in run.message and run.message_sealed is None
    assert pasted.encode() not in fired.content + api.get(f"/api/agents/{agent_id}/runs").content
    assert_no_plaintext_in_db([pasted])
