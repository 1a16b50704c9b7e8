"""Agent work in Celery workers. Tasks take ids only (never secrets) and call one service; the services send them
by the names in agents_app.queueing (they do not import this module).

Runs are bounded: the runtime stops a run after AGENT_RUN_TIMEOUT_SECONDS itself (eager mode too); the task's
soft limit 30 s later marks a run that did not stop as failed (its servers are killed by the runtime's cleanup),
and the hard limit 30 s after that is the last resort. Validation is bounded per
server by AGENT_VALIDATION_TIMEOUT_SECONDS, all servers in parallel.
"""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown
from django.conf import settings
from django.db import InterfaceError, OperationalError

from agents_app.queueing import AGENT_RUN_TASK, AGENT_VALIDATE_TASK, PACKAGES_PREFETCH_TASK
from agents_app.runtime.pool import warm_servers_shutdown
from agents_app.services.package_prefetch import catalogue_packages_prefetch
from agents_app.services.runs import agent_run_abandon, agent_run_execute
from agents_app.services.schedules import agent_schedules_run_due
from agents_app.services.validation import agent_validate, agent_validation_abandon

_DB_ERRORS = (OperationalError, InterfaceError)


@worker_process_shutdown.connect
def _stop_warm_servers(**_: object) -> None:
    """A worker process going away stops the servers it kept warm (no orphan processes)."""
    warm_servers_shutdown()


@shared_task(name=AGENT_VALIDATE_TASK, autoretry_for=_DB_ERRORS, retry_backoff=True, max_retries=3,
             soft_time_limit=settings.AGENT_VALIDATION_TIMEOUT_SECONDS + 60,
             time_limit=settings.AGENT_VALIDATION_TIMEOUT_SECONDS + 90)
def agent_validate_task(agent_id: str) -> str:
    try:
        return agent_validate(agent_id=agent_id).status
    except SoftTimeLimitExceeded:
        agent_validation_abandon(agent_id=agent_id, reason="validation took longer than its time limit")
        return "failed"


@shared_task(name=AGENT_RUN_TASK, autoretry_for=_DB_ERRORS, retry_backoff=True, max_retries=3,
             soft_time_limit=settings.AGENT_RUN_TIMEOUT_SECONDS + 30,
             time_limit=settings.AGENT_RUN_TIMEOUT_SECONDS + 60)
def agent_run_task(run_id: str) -> str:
    try:
        run = agent_run_execute(run_id=run_id)
        return run.status if run is not None else "deleted"
    except SoftTimeLimitExceeded:
        agent_run_abandon(run_id=run_id, reason=f"it took longer than {settings.AGENT_RUN_TIMEOUT_SECONDS} s")
        return "failed"


@shared_task(autoretry_for=_DB_ERRORS, retry_backoff=True, max_retries=2, soft_time_limit=50, time_limit=60)
def agent_schedules_tick() -> int:
    """Beat, every AGENT_SCHEDULE_TICK_SECONDS: start the runs of the schedules that are due."""
    return len(agent_schedules_run_due())


@shared_task(name=PACKAGES_PREFETCH_TASK, soft_time_limit=1800, time_limit=1860)
def packages_prefetch_task(server_slugs: list[str]) -> dict[str, str]:
    """Fetch the packages of the chosen catalogue servers while the user gathers credentials, so that agent
    creation finds them in the cache."""
    return catalogue_packages_prefetch(server_slugs=server_slugs)
