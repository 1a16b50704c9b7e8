"""Bounded waits for the worker (mcpagent.waiting): a process lets only so many requests wait at once."""

import threading
import uuid

from mcpagent.waiting import wait_until, waiting_now


def test_a_wait_ends_when_the_work_is_done(settings):
    settings.WEB_WAITING_REQUESTS_MAX = 2
    answers = iter([False, False, True])
    assert wait_until(lambda: next(answers), seconds=30) is True
    assert waiting_now() == 0


def test_past_the_limit_a_request_looks_once_and_does_not_wait(settings):
    settings.WEB_WAITING_REQUESTS_MAX = 1
    release, started = threading.Event(), threading.Event()

    def slow_work_done() -> bool:
        started.set()
        return release.is_set()

    waiter = threading.Thread(target=wait_until, args=(slow_work_done,), kwargs={"seconds": 30})
    waiter.start()
    try:
        assert started.wait(10) and waiting_now() == 1
        looks = []
        assert wait_until(lambda: looks.append(1) or False, seconds=30) is False
        assert looks == [1]  # looked once, answered at once: the client polls
    finally:
        release.set()
        waiter.join(10)
    assert waiting_now() == 0
    # The slot is free again: the next request waits for its work.
    answers = iter([False, True])
    assert wait_until(lambda: next(answers), seconds=30) is True


def test_no_request_waits_while_the_worker_is_far_behind(settings):
    from mcpagent.celery import app

    # The in-process broker the tests use stands in for Redis: both count a queue's messages the same way.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.WEB_WAITING_REQUESTS_MAX = 4
    settings.WEB_WAIT_MAX_QUEUED = 2
    settings.CELERY_TASK_DEFAULT_QUEUE = f"waiting-{uuid.uuid4().hex}"
    with app.pool.acquire(block=True) as connection:
        queue = connection.SimpleQueue(settings.CELERY_TASK_DEFAULT_QUEUE)
        try:
            queue.put({"task": 1})
            answers = iter([False, True])
            assert wait_until(lambda: next(answers), seconds=30) is True  # one task queued: it waits
            queue.put({"task": 2})
            looks = []
            assert wait_until(lambda: looks.append(1) or False, seconds=30) is False
            assert looks == [1]  # two queued: looked once, no wait
        finally:
            queue.clear()
            queue.close()
