"""Recurring or watching intent in a request -> a proposed schedule for the agent.

"every morning", "each Friday at 5pm", "daily", "every 15 minutes", "hourly" name times; "monitor", "watch",
"keep an eye on", "whenever a new … shows up" ask to look again and again, which an agent does by running on an
interval (WATCH_INTERVAL_SECONDS). The proposal is a 5-field cron expression or an interval, read in the client's
IANA time zone, shaped for agents_app.services.schedules.agent_schedule_set. Hand-written rules rather than a date parser
(dateparser, recurrent): those read one date, not a recurrence, and this covers the phrasings a workflow request
uses in a few dozen lines; anything it misses the client can still set through the schedule API.
"""

import re

WATCH_INTERVAL_SECONDS = 15 * 60  # how often "monitor"/"watch" looks again
DEFAULT_HOUR = 9
_DAY_PARTS = {"morning": 8, "afternoon": 14, "evening": 18, "night": 21}
_WEEKDAYS = {"monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6, "sunday": 0}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10,
            "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty-five": 45}
_EVERY = r"(?:every|each)"

_INTERVAL_RE = re.compile(
    rf"\b{_EVERY}\s+(\d{{1,4}}|{'|'.join(map(re.escape, _NUMBERS))})\s*(minutes?|mins?|hours?|hrs?|h)\b")
_HALF_HOUR_RE = re.compile(rf"\b{_EVERY}\s+half[\s-]+(?:an\s+)?hour\b")
_UNIT_RE = re.compile(rf"\b(?:{_EVERY}\s+(minute|hour)|(hourly))\b")
_DAY_PART_RE = re.compile(rf"\b(?:{_EVERY}\s+(morning|afternoon|evening|night)|(mornings|evenings|nightly))\b")
_WEEKDAY_RE = re.compile(rf"\b(?:{_EVERY}|on)\s+({'|'.join(_WEEKDAYS)})s?\b|\b({'|'.join(_WEEKDAYS)})s\b")
_WORKDAYS_RE = re.compile(rf"\b(?:{_EVERY}\s+(?:weekday|work\s*day|business\s+day)|on\s+weekdays|weekdays)\b")
_DAILY_RE = re.compile(rf"\b(?:daily|{_EVERY}\s+day|once\s+a\s+day|day\s+by\s+day)\b")
_WEEKLY_RE = re.compile(rf"\b(?:weekly|{_EVERY}\s+week|once\s+a\s+week)\b")
_MONTHLY_RE = re.compile(rf"\b(?:monthly|{_EVERY}\s+month|once\s+a\s+month)\b")
_AT_RE = re.compile(r"\bat\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?(?![\d:])|\bat\s+(noon|midnight)\b")
_WATCH_RE = re.compile(
    r"\b(?:monitor(?:s|ing)?|watch(?:es|ing)?\s+(?:my|our|the|for|new|every|over)|keep\s+(?:an\s+)?eye\s+on|"
    r"keep\s+watch|whenever|as\s+soon\s+as|when(?:ever)?\s+(?:a\s+|an\s+)?new|each\s+time\s+(?:a|an)\s+new|"
    r"(?:notify|alert|ping|tell)\s+me\s+(?:when|if|whenever)|check\s+(?:regularly|periodically|continuously))\b")


def propose_schedule(request: str, timezone_name: str = "UTC") -> dict | None:
    """The schedule the request asks for, or None when it asks for one run only. Keys: cron or interval_seconds
    (the other None), timezone, phrase (the words that asked), description."""
    text = " ".join(request.lower().split())
    interval, phrase = _interval(text)
    if interval is None:
        cron, phrase = _cron(text)
        if cron is None:
            watching = _WATCH_RE.search(text)
            if not watching:
                return None
            interval, phrase = WATCH_INTERVAL_SECONDS, watching.group(0)
        else:
            return {"cron": cron, "interval_seconds": None, "timezone": timezone_name, "phrase": phrase,
                    "description": f"{describe_cron(cron)} ({timezone_name})"}
    return {"cron": None, "interval_seconds": interval, "timezone": timezone_name, "phrase": phrase,
            "description": describe_interval(interval)}


def _interval(text: str) -> tuple[int | None, str]:
    if match := _INTERVAL_RE.search(text):
        count = int(match.group(1)) if match.group(1).isdigit() else _NUMBERS[match.group(1)]
        seconds = count * (60 if match.group(2).startswith("m") else 3600)
        return max(seconds, 60), match.group(0)
    if match := _HALF_HOUR_RE.search(text):
        return 1800, match.group(0)
    if match := _UNIT_RE.search(text):
        return (60 if match.group(1) == "minute" else 3600), match.group(0)
    return None, ""


def _cron(text: str) -> tuple[str | None, str]:
    phrases: list[str] = []
    hour, minute = DEFAULT_HOUR, 0
    day_of_week, day_of_month = "*", "*"
    recurring = False
    if match := _DAY_PART_RE.search(text):
        part = match.group(1) or {"mornings": "morning", "evenings": "evening", "nightly": "night"}[match.group(2)]
        hour, recurring = _DAY_PARTS[part], True
        phrases.append(match.group(0))
    days = sorted({_WEEKDAYS[a or b] for a, b in _WEEKDAY_RE.findall(text)})
    weekday_phrase = _WEEKDAY_RE.search(text)
    # "on Monday" alone is one date; it recurs with every/each or the plural ("Mondays").
    if days and weekday_phrase and (re.search(rf"\b{_EVERY}\b|s\b", weekday_phrase.group(0))):
        day_of_week, recurring = ",".join(map(str, days)), True
        phrases.append(weekday_phrase.group(0))
    elif match := _WORKDAYS_RE.search(text):
        day_of_week, recurring = "1-5", True
        phrases.append(match.group(0))
    elif match := _WEEKLY_RE.search(text):
        day_of_week, recurring = "1", True
        phrases.append(match.group(0))
    elif match := _MONTHLY_RE.search(text):
        day_of_month, recurring = "1", True
        phrases.append(match.group(0))
    elif match := _DAILY_RE.search(text):
        recurring = True
        phrases.append(match.group(0))
    if not recurring:
        return None, ""
    if at := _AT_RE.search(text):
        parsed = _clock(at)
        if parsed is not None:
            hour, minute = parsed
            phrases.append(at.group(0))
    return f"{minute} {hour} {day_of_month} * {day_of_week}", " ".join(phrases)


def _clock(match: re.Match) -> tuple[int, int] | None:
    if match.group(4):
        return (12, 0) if match.group(4) == "noon" else (0, 0)
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    suffix = (match.group(3) or "").replace(".", "")
    if suffix == "pm" and hour < 12:
        hour += 12
    elif suffix == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def describe_interval(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "every hour" if hours == 1 else f"every {hours} hours"
    minutes = seconds // 60
    return "every minute" if minutes == 1 else f"every {minutes} minutes"


def describe_cron(cron: str) -> str:
    minute, hour, day_of_month, _month, day_of_week = cron.split()
    if not (minute.isdigit() and hour.isdigit()):
        return f"on cron '{cron}'"
    at = f"at {int(hour):02d}:{int(minute):02d}"
    if day_of_month != "*":
        return f"on day {day_of_month} of every month {at}"
    if day_of_week == "*":
        return f"every day {at}"
    if day_of_week == "1-5":
        return f"every weekday {at}"
    names = {v: k.capitalize() for k, v in _WEEKDAYS.items()}
    days = [names[int(d)] for d in day_of_week.split(",") if d.isdigit()]
    return f"every {' and '.join(days)} {at}"


def schedule_to_apply(proposal: dict | None, choice: object) -> dict | None:
    """The schedule an agent gets when it becomes ready: the client's own (a dict) if they sent one, none if they
    declined (`False`), else the planner's proposal — applied by default, so that a request that says "every
    morning" or "monitor" gives an agent that runs by itself without a further step."""
    if choice is False or choice == "declined":
        return None
    if isinstance(choice, dict):
        return choice
    return proposal


def in_timezone(proposal: dict | None, timezone_name: str) -> dict | None:
    """The proposal read in another time zone (the client's, sent after the plan was made)."""
    if not proposal or proposal.get("timezone") == timezone_name:
        return proposal
    moved = {**proposal, "timezone": timezone_name}
    if moved.get("cron"):
        moved["description"] = f"{describe_cron(moved['cron'])} ({timezone_name})"
    return moved


def describe(schedule: dict) -> str:
    if schedule.get("cron"):
        return f"{describe_cron(schedule['cron'])} ({schedule.get('timezone') or 'UTC'})"
    return describe_interval(schedule["interval_seconds"])
