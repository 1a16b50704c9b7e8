"""Runs people can watch: the list (newest first, paginated), each run's tool calls with duration, result size
and error (arguments redacted), the recorded events, and isolation between clients. Eager Celery, in-process,
with real MCP servers; the live event stream over real HTTP is in test_run_stream.py."""

from agents_app.models import AgentRun, AgentRunEvent
from tests.agents_app.conftest import TIME_SERVER, script
from tests.agents_app.test_apis import CALL_TIME, create, error_of
from tests.sessions_app.secretscan import assert_no_plaintext_in_db

SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c"


def test_runs_list_newest_first_with_tool_calls_recorded_and_secrets_redacted(api, test_servers):
    echo = {**script("echo_args"), "env": {"API_KEY": SECRET}}
    agent_id = create(api, {"time": TIME_SERVER, "echo": echo}, model="passthrough")["agent_id"]
    url = f"/api/agents/{agent_id}"
    first = api.post(f"{url}/messages", {"message": CALL_TIME}, format="json").json()
    second = api.post(f"{url}/messages", {"message": f'***CALL_TOOL echo {{"text": "key {SECRET}"}}'},
                      format="json").json()
    third = api.post(f"{url}/messages", {"message": '***CALL_TOOL fail {"reason": "no luck"}'}, format="json")
    assert third.status_code == 200, third.content

    listed = api.get(f"{url}/runs").json()
    assert listed["count"] == 3
    assert [r["run_id"] for r in listed["results"]] == [third.json()["run_id"], second["run_id"], first["run_id"]]
    assert all(r["trigger"] == "message" and r["status"] == "succeeded" and r["started_at"] and r["finished_at"]
               for r in listed["results"])

    shown = api.get(f"{url}/runs/{second['run_id']}").json()
    call = shown["tool_calls"][0]
    assert call["tool"] == "echo" and call["arguments"] == {"text": "key ***"}
    assert call["duration_ms"] >= 0 and call["result_chars"] == len(f"echo: key {SECRET}") and call["error"] is None
    assert shown["trigger"] == "message" and shown["started_at"]
    failed_call = api.get(f"{url}/runs/{third.json()['run_id']}").json()["tool_calls"][0]
    assert failed_call["is_error"] is True and "Error executing tool fail" in failed_call["error"]

    events = list(AgentRunEvent.objects.filter(run_id=second["run_id"]).order_by("seq"))
    assert [e.kind for e in events] == ["tool_started", "tool_finished", "text", "done"]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[-1].data == {"status": "succeeded", "error": None}
    # The message is the client's own text; everything the run recorded is redacted.
    recorded = str([e.data for e in AgentRunEvent.objects.all()]) + str(api.get(f"{url}/runs").content)
    assert SECRET not in recorded and SECRET not in str(shown["tool_calls"]) + shown["reply"]


def test_runs_are_paginated(api):
    agent_id = create(api, {"time": TIME_SERVER}, model="passthrough")["agent_id"]
    AgentRun.objects.bulk_create([AgentRun(agent_id=agent_id, message=f"m{n}", model="passthrough",
                                           status=AgentRun.Status.SUCCEEDED) for n in range(3)])
    page = api.get(f"/api/agents/{agent_id}/runs?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert len(api.get(f"/api/agents/{agent_id}/runs?page_size=2&page=2").json()["results"]) == 1
    error_of(api.get(f"/api/agents/{agent_id}/runs?page=9"), 404)


def test_another_client_cannot_see_runs_or_their_events(api, other_api):
    agent_id = create(api, {"time": TIME_SERVER}, model="passthrough")["agent_id"]
    run_id = api.post(f"/api/agents/{agent_id}/messages", {"message": CALL_TIME}, format="json").json()["run_id"]
    error_of(other_api.get(f"/api/agents/{agent_id}/runs"), 404, "not_found")
    error_of(other_api.get(f"/api/agents/{agent_id}/runs/{run_id}"), 404, "not_found")
    error_of(other_api.get(f"/api/agents/{agent_id}/runs/{run_id}/events"), 404, "not_found")
    error_of(api.get(f"/api/agents/{agent_id}/runs/{agent_id}/events"), 404, "not_found")


def test_credential_pasted_into_a_message_is_stored_and_shown_masked_but_the_model_gets_it(api, test_servers, caplog):
    # No known token shape: only the vault knows this is the agent's secret.
    pasted = "plain-value-7d1e9c42b8a6"
    echo = {**script("echo_args"), "env": {"API_KEY": pasted}}
    agent_id = create(api, {"echo": echo}, model="passthrough")["agent_id"]
    url = f"/api/agents/{agent_id}"
    caplog.set_level("DEBUG")
    sent = api.post(f"{url}/messages", {"message": f'***CALL_TOOL echo {{"text": "my key is {pasted}"}}'},
                    format="json")
    assert sent.status_code == 200, sent.content
    run_id = sent.json()["run_id"]

    shown = api.get(f"{url}/runs/{run_id}").json()
    # The tool got the real value (the model had the message as sent), and its size says so.
    assert shown["status"] == "succeeded"
    assert shown["tool_calls"][0]["result_chars"] == len(f"echo: my key is {pasted}")
    assert shown["tool_calls"][0]["arguments"] == {"text": "my key is ***"}
    run = AgentRun.objects.get(pk=run_id)
    assert "my key is ***" in run.message and run.message_sealed is None
    events = b"".join(api.get(f"{url}/runs/{run_id}/events").streaming_content)
    assert b"tool_finished" in events
    answers = sent.content + api.get(f"{url}/runs").content + repr(shown).encode() + events
    assert pasted.encode() not in answers
    assert pasted not in caplog.text
    assert_no_plaintext_in_db([pasted.encode().hex(), "my key is " + pasted])
