"""Schedules proposed by the planner: recurring or watching phrasing gives a proposal (in the client's time zone),
other requests none; the client keeps, changes or drops it; a kept proposal becomes the ready agent's schedule,
which fires and records a run. Through HTTP on the bundled catalogue and the offline analyzer, eager Celery."""

import pytest

from agents_app.master.recurrence import propose_schedule
from agents_app.models import AgentRun, AgentSchedule
from agents_app.services import agent_schedules_run_due
from sessions_app.models import Conversation, Session
from tests.agents_app.test_schedules import make_due
from tests.sessions_app.test_chat import SPEC_REQUEST, _chat, _error


@pytest.mark.parametrize("request_text, cron, interval", [
    (SPEC_REQUEST, None, 900),
    ("Every morning send me a summary of my calendar", "0 8 * * *", None),
    ("Each Friday at 5pm post the weekly report to Slack", "0 17 * * 5", None),
    ("Check the status page every 15 minutes and tell me if it is down", None, 900),
    ("Whenever a new issue shows up in my GitHub repo, post it to Discord", None, 900),
    ("Keep an eye on the price of bitcoin", None, 900),
    ("Back up my database daily at 7:30 am", "30 7 * * *", None),
    ("Every weekday at noon remind me to stretch", "0 12 * * 1-5", None),
    ("Sync my tasks hourly", None, 3600),
    ("Every 2 hours check the queue", None, 7200),
])
def test_recurring_phrasing_gets_a_proposed_schedule(request_text, cron, interval):
    proposal = propose_schedule(request_text, "Europe/Berlin")
    assert proposal is not None and (proposal["cron"], proposal["interval_seconds"]) == (cron, interval)
    assert proposal["timezone"] == "Europe/Berlin" and proposal["phrase"] and proposal["description"]


@pytest.mark.parametrize("request_text", [
    "Send an email to Bob with the meeting notes",
    "Translate this document to French and save it in Google Drive",
    "On Monday create a Jira ticket for the release",
    "Search the web for the best pizza in Naples",
    "Watch a video about sourdough and summarize it",
])
def test_one_off_requests_get_no_schedule(request_text):
    assert propose_schedule(request_text) is None


def test_spec_example_proposes_a_schedule_in_the_clients_time_zone(api, bundled_catalogue):
    body = _chat(api, message=SPEC_REQUEST, timezone="America/New_York").json()
    assert body["schedule"] == {"cron": None, "interval_seconds": 900, "timezone": "America/New_York",
                                "description": "every 15 minutes", "phrase": "monitors", "status": "proposed"}
    assert "every 15 minutes once it is ready" in body["reply"]
    dropped = _chat(api, message="no schedule please", session_id=body["session_id"], schedule=False).json()
    assert dropped["schedule"]["status"] == "declined"
    changed = _chat(api, message="daily instead", session_id=body["session_id"],
                    schedule={"cron": "0 7 * * *"}).json()
    assert changed["schedule"] == {"cron": "0 7 * * *", "interval_seconds": None, "timezone": "America/New_York",
                                   "description": "every day at 07:00 (America/New_York)", "status": "confirmed"}


def test_one_off_request_shows_no_schedule(api, bundled_catalogue):
    assert _chat(api, message="Send a Slack message to the team with today's menu").json()["schedule"] is None


@pytest.mark.parametrize("body, field", [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"schedule": {"cron": "every morning"}}, "cron"),
    ({"schedule": {"interval_seconds": 5}}, "interval_seconds"),
    ({"schedule": {"cron": "0 8 * * *", "interval_seconds": 900}}, "schedule"),
    ({"schedule": "sometimes"}, "schedule"),
    ({"schedule": {"cron": "0 8 * * *", "timezone": "Nowhere/City"}}, "timezone"),
])
def test_bad_timezone_or_schedule_is_a_400_and_stores_nothing(api, bundled_catalogue, body, field):
    error = _error(_chat(api, message=SPEC_REQUEST, **body), 400, "invalid_input")
    assert error["details"]["field"] == field, error
    assert not Session.objects.exists() and not Conversation.objects.exists()


def test_a_kept_proposal_becomes_the_agents_schedule_which_fires_and_records_a_run(api, bundled_catalogue):
    body = _chat(api, message="Every morning tell me the current time in Tokyo", timezone="Asia/Tokyo").json()
    assert body["agent_created"] is True, body["reply"]
    assert body["schedule"]["status"] == "applied" and body["schedule"]["cron"] == "0 8 * * *"
    assert body["schedule"]["timezone"] == "Asia/Tokyo" and body["schedule"]["next_run_at"]
    agent_id = body["agent_id"]
    schedule = AgentSchedule.objects.get(agent_id=agent_id)
    assert (schedule.cron, schedule.timezone, schedule.enabled) == ("0 8 * * *", "Asia/Tokyo", True)

    make_due(agent_id)
    assert len(agent_schedules_run_due()) == 1
    runs = api.get(f"/api/agents/{agent_id}/runs").json()["results"]
    assert [(r["trigger"], r["status"]) for r in runs] == [("schedule", "succeeded")]

    # Changed, then dropped, on later turns: applied to the ready agent at once.
    changed = _chat(api, message="make it hourly", session_id=body["session_id"],
                    schedule={"interval_seconds": 3600}).json()
    assert changed["schedule"]["status"] == "applied" and changed["schedule"]["interval_seconds"] == 3600
    dropped = _chat(api, message="stop running by yourself", session_id=body["session_id"], schedule=False).json()
    assert dropped["schedule"]["status"] == "declined" and not AgentSchedule.objects.filter(agent_id=agent_id).exists()
    assert AgentRun.objects.filter(agent_id=agent_id).count() == 1


def test_a_declined_proposal_gives_an_agent_without_schedule(api, bundled_catalogue):
    body = _chat(api, message="Every morning tell me the current time in Tokyo", schedule=False).json()
    assert body["agent_created"] is True and body["schedule"]["status"] == "declined"
    assert not AgentSchedule.objects.exists()
