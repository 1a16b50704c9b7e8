"""How long a client should wait before it asks again about a session the worker is busy with (Retry-After).

A fixed interval has every waiting client poll all the time while the worker is behind: 200 clients polling every
2 s took most of both cores from the analyses they were waiting for. So a session still being analysed is told about
the time the worker needs for the sessions queued before it, from how fast analyses have been finishing lately
(counted per second in the cache by the worker). With nothing to go on, or for an agent being created, the answer is
POLL_INTERVAL_SECONDS; it is never more than POLL_INTERVAL_MAX_SECONDS.
"""

import logging
import math
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache

from sessions_app.models import Session

logger = logging.getLogger(__name__)

_KEY = "analyses-finished:{second}"
_WINDOW_SECONDS = 10
_QUEUED_AT_MOST = timedelta(minutes=10)


def analysis_finished() -> None:
    """Counts one finished analysis in this second's bucket (the worker calls it)."""
    key = _KEY.format(second=int(time.time()))
    try:
        cache.add(key, 0, timeout=_WINDOW_SECONDS * 3)
        cache.incr(key)
    except Exception as exc:  # noqa: BLE001  (a hint only: an unreachable cache must not fail the analysis)
        logger.info("finished analysis not counted: %s", type(exc).__name__)


def _finish_rate() -> float | None:
    """Analyses finished per second over the last few seconds, or None when none finished (or the cache is down)."""
    now = time.time()
    seconds = range(int(now) - _WINDOW_SECONDS, int(now) + 1)
    try:
        counts = cache.get_many([_KEY.format(second=second) for second in seconds])
    except Exception as exc:  # noqa: BLE001  (then the fixed interval)
        logger.info("analysis rate unknown: %s", type(exc).__name__)
        return None
    finished = sum(counts.values())
    if not finished:
        return None
    oldest = min(int(key.rsplit(":", 1)[1]) for key in counts)
    return finished / max(1.0, now - oldest)


def poll_after_seconds(session: Session) -> int:
    floor, ceiling = settings.POLL_INTERVAL_SECONDS, max(settings.POLL_INTERVAL_SECONDS,
                                                         settings.POLL_INTERVAL_MAX_SECONDS)
    if session.status != Session.Status.ANALYSING or ceiling == floor:
        return floor
    rate = _finish_rate()
    if rate is None:
        return floor
    # Sessions left `analysing` long ago (their task was lost) are not in the worker's queue: not counted.
    ahead = Session.objects.filter(status=Session.Status.ANALYSING, updated_at__lt=session.updated_at,
                                   updated_at__gte=session.updated_at - _QUEUED_AT_MOST).count()
    return min(ceiling, max(floor, math.ceil(ahead / rate)))
