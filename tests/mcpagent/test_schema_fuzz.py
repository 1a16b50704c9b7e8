"""Hostile input against the published schema: schemathesis generates requests for every operation of
/api/schema/ (valid and invalid ones) and sends them with a valid API key to a real live server. Every answer must
be no 5xx, a status the schema documents, in the documented content type and shape, and invalid input must be
refused.

Not checked: that every schema-valid request is accepted (schemathesis' positive_data_acceptance). Some rules
cannot be written in OpenAPI: the launch safety rules of an MCP config, credential names, base64 file contents,
null and lone-surrogate characters (refused by DRF). Those answers are 400s in our error shape, which the checks
below still hold to the schema.

Celery work (agent creation, runs) goes to a broker with no worker listening on its queue: the API answers 202 at
once (AGENT_CREATE_WAIT_SECONDS / AGENT_RUN_WAIT_SECONDS = 0) instead of running MCP servers inline.
"""

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from agents_app.models import Agent, AgentRun, AgentSchedule
from sessions_app.models import Session

# Examples per operation (and per phase); FUZZ_MAX_EXAMPLES raises it for a longer run by hand.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "5"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, negative_data_rejection]


@pytest.fixture
def fuzz_target(live_server, api, redis_url, settings):
    """The live server with no rate limits, Celery pointed at a queue no worker reads, and one of each object
    (session, agent, run, schedule) whose ids the generated paths use."""
    from mcpagent.celery import app

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"client": "off", "ip": "off", "auth_failure": "off"}}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.AGENT_CREATE_WAIT_SECONDS = 0
    settings.AGENT_RUN_WAIT_SECONDS = 0
    old = {k: app.conf[k] for k in ("broker_url", "result_backend", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False,
                    task_default_queue=f"schema-fuzz-{os.getpid()}")
    try:
        yield live_server, api
    finally:
        app.conf.update(old)
        with app.connection_for_write() as conn:  # what the cases queued: nobody will ever run it
            conn.default_channel.queue_purge(f"schema-fuzz-{os.getpid()}")


def _objects(client) -> dict[str, str]:
    """Ids of a session, agent, run and schedule of `client`, made again if a generated DELETE removed them."""
    session = Session.objects.filter(client=client).first() or Session.objects.create(client=client)
    agent = Agent.objects.filter(client=client, status=Agent.Status.READY).first() or Agent.objects.create(
        client=client, session=session, name="fuzz", status=Agent.Status.READY, model="passthrough",
        mcp_config={"mcpServers": {}}, workflow="1. say hello")
    run = agent.runs.first() or AgentRun.objects.create(agent=agent, message="hi", model="passthrough",
                                                        status=AgentRun.Status.SUCCEEDED, reply="hello")
    AgentSchedule.objects.get_or_create(agent=agent, defaults={"interval_seconds": 3600})
    return {"session_id": str(session.id), "agent_id": str(agent.id), "run_id": str(run.id)}


def _published_schema() -> dict:
    """What GET /api/schema/ serves (built the same way, at collection, so each operation is its own test)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


# /api/health is left out: its documented 503 (no worker answers here) is what not_a_server_error refuses.
schema = schemathesis.openapi.from_dict(_published_schema()).exclude(path="/api/health")


@pytest.mark.worker
@schema.parametrize()
@hypothesis_settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None,
                     suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, fuzz_target):
    server, api = fuzz_target
    ids = _objects(api.client_obj)
    for name in ("session_id", "agent_id", "run_id"):
        # Real ids: a random UUID only ever reaches the 404. Invalid generated ones stay, to be refused.
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = ids[name]
    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {api.raw_key}"},
                           checks=CHECKS, timeout=30)


def test_the_fuzzed_schema_is_the_served_one(client):
    assert client.get("/api/schema/?format=json").json() == _published_schema()
