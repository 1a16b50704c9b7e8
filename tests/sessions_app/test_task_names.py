"""The chat services send the session tasks by name (sessions_app.tasks imports the services, not the other way):
each name they send is a task registered in every process."""

from mcpagent.celery import app
from sessions_app import services, tasks


def test_session_task_names_are_registered():
    assert app.tasks[services.ANALYSE_SESSION_TASK].name == tasks.analyse_session.name
    assert app.tasks[services.CREATE_SESSION_AGENT_TASK].name == tasks.create_session_agent.name
