"""A chat turn's analysis is taken from the queue before agent creations sent earlier (real Redis broker)."""

import uuid

from mcpagent.celery import app
from sessions_app import tasks


def test_an_analysis_is_taken_before_agent_creations_queued_earlier(redis_url, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # sent to the broker, where nothing takes them but this test
    eager = app.conf["task_always_eager"]
    app.conf.update(task_always_eager=False)
    queue = f"priority-{uuid.uuid4().hex}"
    try:
        with app.connection_for_write(redis_url) as connection, connection.SimpleQueue(queue) as waiting:
            try:
                for number in range(3):
                    tasks.create_session_agent.apply_async((f"creation-{number}",), queue=queue,
                                                           connection=connection)
                tasks.analyse_session.apply_async(("the-analysis",), queue=queue, connection=connection)
                taken = [waiting.get(timeout=5) for _ in range(4)]
                for message in taken:
                    message.ack()
            finally:
                waiting.clear()
    finally:
        app.conf.update(task_always_eager=eager)
    assert [message.headers["argsrepr"] for message in taken] == [
        "('the-analysis',)", "('creation-0',)", "('creation-1',)", "('creation-2',)"]
