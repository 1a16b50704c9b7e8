"""`manage.py run_agent` for operators."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents_app.services import agent_create, agent_validate
from tests.agents_app.conftest import TIME_SERVER


@pytest.fixture
def agent(api):
    agent = agent_create(client=api.client_obj, servers={"time": TIME_SERVER}, user_prompt="Time please",
                         workflow="Get the time", model="sonnet")
    return agent_validate(agent_id=agent.id)


def test_prints_the_reply_and_with_verbose_the_tool_calls(agent):
    out = StringIO()
    call_command("run_agent", str(agent.id), '***CALL_TOOL get_current_time {"timezone": "UTC"}',
                 "--model", "passthrough", "--verbose", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == '-> get_current_time {"timezone": "UTC"}'
    assert lines[1].startswith("<- {") and '"timezone": "UTC"' in out.getvalue()
    assert lines[-1].startswith('{"datetime":')
    assert agent.runs.get().model == "passthrough"


def test_errors_are_command_errors(agent, settings):
    with pytest.raises(CommandError, match="No agent"):
        call_command("run_agent", "00000000-0000-0000-0000-000000000000", "hi")
    settings.ANTHROPIC_API_KEY = ""
    settings.ANTHROPIC_BASE_URL = ""
    with pytest.raises(CommandError, match="fast-agent does not know the model"):
        call_command("run_agent", str(agent.id), "hi", "--model", "no-such-provider.no-such-model")


def test_missing_model_api_key_is_explained(agent, settings, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    settings.ANTHROPIC_API_KEY = ""
    settings.ANTHROPIC_BASE_URL = ""
    with pytest.raises(CommandError) as caught:
        call_command("run_agent", str(agent.id), "hi")
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    run = agent.runs.get()
    assert run.status == "failed" and run.error["code"] == "run_failed"
