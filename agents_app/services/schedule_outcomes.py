"""What the end of a scheduled run does to its schedule: a success resets the count of failures in a row, and
too many failures in a row pause the schedule. Its own module because runs record it and schedules start runs."""

import logging

from django.conf import settings
from django.db import transaction

from agents_app.models import AgentRun, AgentSchedule

logger = logging.getLogger(__name__)


def agent_schedule_record_run(*, run: AgentRun) -> None:
    """A scheduled run ended: success resets the failure count; a failure counts, and the
    AGENT_SCHEDULE_MAX_FAILURES-th in a row pauses the schedule with the run's error as the reason."""
    if run.trigger != AgentRun.Trigger.SCHEDULE or run.status not in (AgentRun.Status.SUCCEEDED,
                                                                      AgentRun.Status.FAILED):
        return
    with transaction.atomic():
        schedule = AgentSchedule.objects.select_for_update().filter(agent_id=run.agent_id).first()
        if schedule is None:
            return
        if run.status == AgentRun.Status.SUCCEEDED:
            schedule.consecutive_failures = 0
        else:
            schedule.consecutive_failures += 1
            limit = settings.AGENT_SCHEDULE_MAX_FAILURES
            if limit > 0 and schedule.consecutive_failures >= limit and not schedule.paused_reason:
                message = (run.error or {}).get("message") or "the run failed"
                schedule.paused_reason = (f"Paused after {schedule.consecutive_failures} failed runs in a row; "
                                          f"the last: {message}")[:2000]
                logger.warning("schedule of agent %s paused: %s", run.agent_id, schedule.paused_reason)
        schedule.save(update_fields=["consecutive_failures", "paused_reason", "updated_at"])
