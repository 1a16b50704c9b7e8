"""Bounded waits in web requests for work a Celery worker does (a chat turn's analysis, an agent's validation, a
run), so that an idle service answers with the outcome in one round trip.

A waiting request holds a web thread. Under load the worker is behind, the waits run to their end, and every
thread ends up waiting while new requests queue for one: 200 chat clients on 48 threads made each first turn take
17 s. So at most WEB_WAITING_REQUESTS_MAX requests of a process wait at once, and none waits while the worker's queue
already holds WEB_WAIT_MAX_QUEUED tasks (its work cannot be done in time: the wait would only hold the thread);
such a request answers at once with what to poll, as it would after a wait that ran out.
"""

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings

from mcpagent.celery import app as celery_app

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_waiting = 0


def _enter() -> bool:
    global _waiting
    with _lock:
        if _waiting >= settings.WEB_WAITING_REQUESTS_MAX:
            return False
        _waiting += 1
        return True


def _leave() -> None:
    global _waiting
    with _lock:
        _waiting -= 1


def waiting_now() -> int:
    """Requests of this process waiting at the moment."""
    return _waiting


def queued_tasks() -> int | None:
    """Tasks waiting in the worker's queue (not those being run), or None when the broker cannot tell."""
    try:
        with celery_app.pool.acquire(block=True, timeout=2) as connection:
            declared = connection.default_channel.queue_declare(queue=settings.CELERY_TASK_DEFAULT_QUEUE,
                                                                passive=True)
    except Exception as exc:  # noqa: BLE001  (any broker failure: then wait as usual; sending the task will tell)
        logger.info("queue length unknown: %s", type(exc).__name__)
        return None
    return declared.message_count


def _worker_behind() -> bool:
    limit = settings.WEB_WAIT_MAX_QUEUED
    if limit <= 0 or settings.CELERY_TASK_ALWAYS_EAGER:
        return False
    queued = queued_tasks()
    return queued is not None and queued >= limit


def wait_until(finished: Callable[[], bool], *, seconds: float) -> bool:
    """Call `finished` (a database read) until it is true or `seconds` pass; False at once when this process
    already has its most waiting requests or the worker is far behind. Polls fast at first (an idle worker
    finishes in tens of milliseconds), then every quarter second."""
    if finished():
        return True
    if seconds <= 0 or _worker_behind() or not _enter():
        return False
    try:
        deadline = time.monotonic() + seconds
        pause = 0.05
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(pause, left))
            pause = min(pause * 1.5, 0.25)
            if finished():
                return True
        return False
    finally:
        _leave()
