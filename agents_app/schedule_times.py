"""When a schedule fires: 5-field cron expressions (minute hour day-of-month month day-of-week) read with Celery's
own `celery.schedules.crontab` in the schedule's IANA time zone, and fixed intervals. No new dependency.

Celery's crontab, unlike Vixie cron, needs both day-of-month and day-of-week to match when both are restricted."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import crontab

from mcpagent.errors import ApplicationError

MIN_INTERVAL_SECONDS = 60  # the beat tick's resolution
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", code="invalid_input", details={"field": field})


def check_timezone(name: str) -> ZoneInfo:
    # available_timezones() rather than ZoneInfo() alone: ZoneInfo also opens any relative file path it is given.
    if not isinstance(name, str) or name not in available_timezones():
        raise _invalid("timezone", "not an IANA time zone name (e.g. Europe/Berlin, UTC).")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid("timezone", "not an IANA time zone name (e.g. Europe/Berlin, UTC).") from None


def parse_cron(expression: str) -> crontab:
    fields = expression.split() if isinstance(expression, str) else []
    if len(fields) != 5:
        raise _invalid("cron", "must have 5 fields: minute hour day-of-month month day-of-week (e.g. '0 8 * * *').")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        schedule = crontab(minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month,
                           month_of_year=month)
    except Exception as exc:  # noqa: BLE001 -- Celery's parser raises ValueError, ParseException, IndexError
        raise _invalid("cron", f"not a valid cron expression ({exc}).") from None
    if not schedule.minute or not schedule.hour or not schedule.day_of_week:
        raise _invalid("cron", "matches no time.")
    return schedule


def check_interval(seconds: int) -> int:
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not (
            MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS):
        raise _invalid("interval_seconds",
                       f"must be a whole number of seconds from {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS}.")
    return seconds


def next_cron_time(expression: str, zone_name: str, *, after: datetime) -> datetime:
    """The first minute strictly after `after` that the expression names in its time zone, in UTC."""
    zone = check_timezone(zone_name)
    schedule = parse_cron(expression)
    start = after.astimezone(zone).replace(second=0, microsecond=0)
    try:
        last, delta, _now = schedule.remaining_delta(start, tz=zone)
    except RuntimeError:  # e.g. "0 0 31 2 *": Celery gives up rolling over
        raise _invalid("cron", "matches no date.") from None
    return (last + delta).astimezone(dt_timezone.utc)


def next_interval_time(seconds: int, *, previous: datetime | None, after: datetime) -> datetime:
    """The next slot of a fixed interval after `after`, on the cadence of `previous` (slots missed while nothing
    ticked are skipped, not made up)."""
    if previous is None or previous > after:
        return after + timedelta(seconds=seconds)
    missed = int((after - previous).total_seconds() // seconds) + 1
    return previous + timedelta(seconds=seconds * missed)
