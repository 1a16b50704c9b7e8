"""Per-client caps on agent creations and runs under way, through the real API (counted from the database)."""

import pytest

from agents_app.models import Agent, AgentRun
from sessions_app.models import Session
from tests.agents_app.conftest import TIME_SERVER
from tests.agents_app.test_apis import create_body, error_of


def _agent(client, status=Agent.Status.READY) -> Agent:
    return Agent.objects.create(client=client, status=status, name="t", model="passthrough",
                                mcp_config={"mcpServers": {"time": TIME_SERVER}})


@pytest.fixture
def limits(settings):
    settings.AGENT_MAX_CONCURRENT_CREATIONS_PER_CLIENT = 2
    settings.AGENT_MAX_CONCURRENT_RUNS_PER_CLIENT = 2


def test_creation_over_the_limit_is_429_naming_it(api, limits):
    _agent(api.client_obj, Agent.Status.CREATING)
    _agent(api.client_obj, Agent.Status.VALIDATING)
    before = Agent.objects.count()
    error = error_of(api.post("/api/agents/create", create_body({"time": TIME_SERVER}), format="json"), 429,
                     "too_many_in_progress")
    assert "AGENT_MAX_CONCURRENT_CREATIONS_PER_CLIENT=2" in error["message"]
    assert error["details"] == {"limit": 2, "in_progress": 2, "setting": "AGENT_MAX_CONCURRENT_CREATIONS_PER_CLIENT"}
    assert Agent.objects.count() == before


def test_chat_sessions_being_analysed_count_as_creations(api, limits):
    Session.objects.create(client=api.client_obj, status=Session.Status.ANALYSING)
    Session.objects.create(client=api.client_obj, status=Session.Status.CREATING_AGENT)
    sessions = Session.objects.count()
    error_of(api.post("/api/chat", {"message": "Tell me the time in UTC"}, format="json"), 429,
             "too_many_in_progress")
    assert Session.objects.count() == sessions  # the refused turn left nothing behind


def test_finished_agents_do_not_count(api, limits, db):
    _agent(api.client_obj, Agent.Status.READY)
    _agent(api.client_obj, Agent.Status.FAILED)
    _agent(api.client_obj, Agent.Status.CREATING)
    response = api.post("/api/agents/create", create_body({"time": TIME_SERVER}, model="passthrough"), format="json")
    assert response.status_code == 201, response.content


def test_run_over_the_limit_is_429_naming_it(api, limits):
    agent = _agent(api.client_obj)
    AgentRun.objects.create(agent=agent, message="a", model="passthrough", status=AgentRun.Status.QUEUED)
    AgentRun.objects.create(agent=_agent(api.client_obj), message="b", model="passthrough",
                            status=AgentRun.Status.RUNNING)
    AgentRun.objects.create(agent=agent, message="c", model="passthrough", status=AgentRun.Status.SUCCEEDED)
    error = error_of(api.post(f"/api/agents/{agent.id}/messages", {"message": "hello"}, format="json"), 429,
                     "too_many_in_progress")
    assert "AGENT_MAX_CONCURRENT_RUNS_PER_CLIENT=2" in error["message"]
    assert AgentRun.objects.filter(agent=agent).count() == 2


def test_one_clients_work_does_not_limit_another(api, other_api, limits):
    _agent(api.client_obj, Agent.Status.CREATING)
    _agent(api.client_obj, Agent.Status.CREATING)
    busy = _agent(api.client_obj)
    for message in ("a", "b"):
        AgentRun.objects.create(agent=busy, message=message, model="passthrough")
    mine = _agent(other_api.client_obj)
    assert other_api.post(f"/api/agents/{mine.id}/messages", {"message": "hello"}, format="json").status_code == 200
    response = other_api.post("/api/agents/create", create_body({"time": TIME_SERVER}, model="passthrough"),
                              format="json")
    assert response.status_code == 201, response.content


def test_zero_means_no_limit(api, settings):
    settings.AGENT_MAX_CONCURRENT_RUNS_PER_CLIENT = 0
    agent = _agent(api.client_obj)
    for message in ("a", "b", "c"):
        AgentRun.objects.create(agent=agent, message=message, model="passthrough")
    assert api.post(f"/api/agents/{agent.id}/messages", {"message": "hello"}, format="json").status_code == 200
