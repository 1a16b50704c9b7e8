"""Agent schedules: set (cron or interval) and delete an agent's schedule, and start the runs that are due (the
beat task's work)."""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents_app import schedule_times
from agents_app.models import Agent, AgentRun, AgentSchedule
from agents_app.selectors import agent_schedule_get
from agents_app.services.runs import agent_message_send, agent_run_queue
from mcpagent.errors import ApplicationError

logger = logging.getLogger(__name__)


def _schedule_next_run(schedule: AgentSchedule, *, after: Any) -> Any:
    if schedule.cron:
        return schedule_times.next_cron_time(schedule.cron, schedule.timezone, after=after)
    return schedule_times.next_interval_time(schedule.interval_seconds, previous=schedule.next_run_at, after=after)


@transaction.atomic
def agent_schedule_set(*, agent: Agent, cron: str | None = None, interval_seconds: int | None = None,
                       timezone_name: str = "UTC", enabled: bool = True) -> tuple[AgentSchedule, bool]:
    """Create or replace the agent's schedule: exactly one of `cron` and `interval_seconds`. Replacing clears a
    pause and the failure count and computes `next_run_at` afresh. Returns (schedule, created)."""
    cron = (cron or "").strip()
    if bool(cron) == (interval_seconds is not None):
        field = "cron" if not cron else "interval_seconds"
        raise ApplicationError("Give exactly one of cron and interval_seconds.", code="invalid_input",
                               details={"field": field})
    schedule_times.check_timezone(timezone_name)
    if cron:
        schedule_times.parse_cron(cron)
        cron = " ".join(cron.split())
    else:
        schedule_times.check_interval(interval_seconds)
    schedule = AgentSchedule.objects.select_for_update().filter(agent=agent).first()
    created = schedule is None
    schedule = schedule or AgentSchedule(agent=agent)
    schedule.cron = cron
    schedule.interval_seconds = None if cron else interval_seconds
    schedule.timezone = timezone_name
    schedule.enabled, schedule.paused_reason, schedule.consecutive_failures = enabled, "", 0
    schedule.next_run_at = None  # an interval starts afresh from now, not on the old cadence
    schedule.next_run_at = _schedule_next_run(schedule, after=timezone.now())
    schedule.save()
    return schedule, created


@transaction.atomic
def agent_schedule_delete(*, agent: Agent) -> None:
    agent_schedule_get(agent=agent).delete()


def agent_schedules_run_due(*, now: Any = None, limit: int = 500) -> list[AgentRun]:
    """Start the runs of the enabled, unpaused schedules whose `next_run_at` has come (the beat task's work).

    Each due schedule is locked (skip_locked: two ticks at once share the work, never a schedule) and its
    `next_run_at` moved past now before anything starts, so one slot starts at most one run; slots missed while
    no tick ran are skipped, not made up. A slot is skipped (logged, nothing recorded) when the agent already has
    a queued or running run, is not ready, or its client is at its cap of runs in progress."""
    now = now or timezone.now()
    started: list[AgentRun] = []
    with transaction.atomic():
        due = list(AgentSchedule.objects.select_for_update(skip_locked=True, of=("self",))
                   .select_related("agent", "agent__client")
                   .filter(enabled=True, paused_reason="", next_run_at__lte=now).order_by("next_run_at")[:limit])
        for schedule in due:
            slot = schedule.next_run_at
            schedule.next_run_at = _schedule_next_run(schedule, after=now)
            schedule.save(update_fields=["next_run_at", "updated_at"])
            agent = schedule.agent
            if AgentRun.objects.filter(agent=agent, status__in=[AgentRun.Status.QUEUED,
                                                                AgentRun.Status.RUNNING]).exists():
                logger.info("schedule of agent %s: slot %s skipped, a run is still under way", agent.id, slot)
                continue
            try:
                run = agent_message_send(agent=agent, message=agent.workflow or agent.metadata.get("user_prompt"),
                                         trigger=AgentRun.Trigger.SCHEDULE)
            except ApplicationError as exc:
                logger.warning("schedule of agent %s: slot %s skipped: %s (%s)", agent.id, slot, exc.message,
                               exc.code)
                continue
            schedule.last_run_at = now
            schedule.save(update_fields=["last_run_at", "updated_at"])
            started.append(run)
    for run in started:  # after the commit, so a worker finds the run
        try:
            agent_run_queue(run=run)
        except ApplicationError:
            logger.warning("scheduled run %s could not be queued (the queue is unavailable)", run.id)
    return started
