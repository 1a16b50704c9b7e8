"""Agent creations and runs are counted by outcome (mcpagent.metrics), with real MCP servers."""

from prometheus_client import REGISTRY

from tests.agents_app.conftest import TIME_SERVER, script
from tests.agents_app.test_apis import create, create_body



def count(name: str, outcome: str) -> float:
    return REGISTRY.get_sample_value(name, {"outcome": outcome}) or 0.0


def test_creations_and_runs_are_counted_by_outcome(api, settings, test_servers):
    created = {o: count("mcpagent_agent_creations_total", o) for o in ("ready", "failed")}
    runs = count("mcpagent_agent_runs_total", "succeeded")
    agent_id = create(api, {"time": TIME_SERVER}, model="passthrough")["agent_id"]
    assert api.post("/api/agents/create", create_body({"broken": script("crashing")}), format="json").status_code == 422
    assert count("mcpagent_agent_creations_total", "ready") == created["ready"] + 1
    assert count("mcpagent_agent_creations_total", "failed") == created["failed"] + 1

    response = api.post(f"/api/agents/{agent_id}/messages", {"message": "hello"}, format="json")
    assert response.status_code == 200, response.content
    assert count("mcpagent_agent_runs_total", "succeeded") == runs + 1
