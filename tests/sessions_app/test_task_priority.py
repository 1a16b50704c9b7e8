"""A chat turn's analysis is taken from the queue before agent creations sent earlier (real Redis broker)."""

import uuid

from mcpagent.celery import app
from sessions_app.services import _dispatch
from tests.conftest import _forget_celery_connections


def test_an_analysis_is_taken_before_agent_creations_queued_earlier(redis_url, settings):
    # Sent to a queue of this test's on the real broker, where nothing takes them but this test.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queue = f"priority-{uuid.uuid4().hex}"
    old = {key: app.conf[key] for key in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=redis_url, task_always_eager=False, task_default_queue=queue)
    _forget_celery_connections(app)
    try:
        _dispatch([("create_agent", f"creation-{number}") for number in range(3)])
        _dispatch([("analyse", "the-analysis")])
        with app.connection_for_write() as connection, connection.SimpleQueue(queue) as waiting:
            try:
                taken = [waiting.get(timeout=5) for _ in range(4)]
                for message in taken:
                    message.ack()
            finally:
                waiting.clear()
    finally:
        app.conf.update(old)
        _forget_celery_connections(app)
    assert [message.headers["argsrepr"] for message in taken] == [
        "('the-analysis',)", "('creation-0',)", "('creation-1',)", "('creation-2',)"]
