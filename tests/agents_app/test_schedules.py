"""Agent schedules: the API (validation, isolation), the tick that starts due runs (one per slot, none while a run
is under way, none when paused) and the pause after failed runs in a row. Eager Celery, in-process, except the
last tests (a real worker runs the tick task by name; a real `celery beat` sends it and the run follows)."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from agents_app import schedule_times
from agents_app.models import AgentRun, AgentSchedule
from agents_app.services import agent_schedules_run_due
from mcpagent.celery import app
from tests.agents_app.conftest import TIME_SERVER
from tests.agents_app.test_apis import create, error_of
from tests.agents_app.test_worker import wait_until
from tests.conftest import ROOT, celery_worker_process


@pytest.fixture
def agent_id(api) -> str:
    return create(api, {"time": TIME_SERVER}, model="passthrough")["agent_id"]


def make_due(agent_id: str) -> None:
    AgentSchedule.objects.filter(agent_id=agent_id).update(next_run_at=timezone.now() - timedelta(minutes=1))


def test_put_creates_then_replaces_get_shows_delete_removes(api, agent_id):
    url = f"/api/agents/{agent_id}/schedule"
    error_of(api.get(url), 404, "not_found")

    created = api.put(url, {"cron": "0  8 * * 1-5", "timezone": "Europe/Berlin"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["cron"] == "0 8 * * 1-5" and body["interval_seconds"] is None and body["timezone"] == "Europe/Berlin"
    assert body["enabled"] is True and body["paused"] is False and body["paused_reason"] is None
    next_run = datetime.fromisoformat(body["next_run_at"]).astimezone(schedule_times.check_timezone("Europe/Berlin"))
    assert (next_run.hour, next_run.minute) == (8, 0) and next_run.isoweekday() <= 5
    assert next_run > timezone.now()
    assert api.get(url).json() == body

    replaced = api.put(url, {"interval_seconds": 3600}, format="json")
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["cron"] is None and replaced.json()["interval_seconds"] == 3600
    assert replaced.json()["timezone"] == "UTC"
    assert AgentSchedule.objects.filter(agent_id=agent_id).count() == 1

    assert api.delete(url).status_code == 204
    error_of(api.get(url), 404, "not_found")
    error_of(api.delete(url), 404, "not_found")


@pytest.mark.parametrize("body, field", [
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "0 8 * *"}, "cron"),
    ({"cron": "every morning"}, "cron"),
    ({"cron": "0 8 32 * *"}, "cron"),
    ({"interval_seconds": 59}, "interval_seconds"),
    ({"interval_seconds": 600, "cron": "0 8 * * *"}, "interval_seconds"),
    ({}, "cron"),
    ({"cron": "0 8 * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"cron": "0 8 * * *", "timezone": "../../etc/passwd"}, "timezone"),
])
def test_bad_schedules_are_a_400_naming_the_field(api, agent_id, body, field):
    error = error_of(api.put(f"/api/agents/{agent_id}/schedule", body, format="json"), 400)
    assert error["details"]["field"] == field, error
    assert not AgentSchedule.objects.exists()


def test_another_clients_agent_schedule_is_a_404(api, other_api, agent_id):
    url = f"/api/agents/{agent_id}/schedule"
    assert api.put(url, {"interval_seconds": 600}, format="json").status_code == 201
    error_of(other_api.get(url), 404, "not_found")
    error_of(other_api.put(url, {"interval_seconds": 60}, format="json"), 404, "not_found")
    error_of(other_api.delete(url), 404, "not_found")
    assert AgentSchedule.objects.get(agent_id=agent_id).interval_seconds == 600


def test_schedule_goes_with_its_agent(api, agent_id):
    api.put(f"/api/agents/{agent_id}/schedule", {"interval_seconds": 600}, format="json")
    assert api.delete(f"/api/agents/{agent_id}").status_code == 204
    assert not AgentSchedule.objects.exists()


def test_next_cron_time_is_read_in_the_schedules_time_zone():
    after = datetime(2026, 3, 28, 7, 30, 15, tzinfo=dt_timezone.utc)  # 08:30 in Berlin, the day before DST
    first = schedule_times.next_cron_time("0 8 * * *", "Europe/Berlin", after=after)
    assert first == datetime(2026, 3, 29, 6, 0, tzinfo=dt_timezone.utc)  # 08:00 CEST
    assert schedule_times.next_cron_time("0 8 * * *", "Europe/Berlin", after=first) == \
        datetime(2026, 3, 30, 6, 0, tzinfo=dt_timezone.utc)
    assert schedule_times.next_cron_time("*/15 * * * *", "UTC", after=after) == \
        datetime(2026, 3, 28, 7, 45, tzinfo=dt_timezone.utc)


def test_interval_keeps_its_cadence_and_skips_missed_slots():
    previous = datetime(2026, 1, 1, 12, 0, tzinfo=dt_timezone.utc)
    late = previous + timedelta(seconds=250)
    assert schedule_times.next_interval_time(100, previous=previous, after=late) == previous + timedelta(seconds=300)


def test_due_schedule_starts_exactly_one_scheduled_run(api, agent_id):
    api.put(f"/api/agents/{agent_id}/schedule", {"interval_seconds": 3600}, format="json")
    make_due(agent_id)
    started = agent_schedules_run_due()
    assert len(started) == 1
    run = AgentRun.objects.get(agent_id=agent_id)
    assert run.trigger == AgentRun.Trigger.SCHEDULE and run.status == AgentRun.Status.SUCCEEDED
    assert run.message == "Get the current time\nAnswer with it"  # the agent's workflow
    schedule = AgentSchedule.objects.get(agent_id=agent_id)
    assert schedule.next_run_at > timezone.now() + timedelta(minutes=50)
    assert schedule.last_run_at is not None and schedule.consecutive_failures == 0

    assert agent_schedules_run_due() == []  # the slot was used: a second tick starts nothing
    assert AgentRun.objects.filter(agent_id=agent_id).count() == 1
    detail = api.get(f"/api/agents/{agent_id}/runs/{run.id}").json()
    assert detail["status"] == "succeeded"


def test_paused_or_disabled_schedules_do_not_run(api, agent_id):
    api.put(f"/api/agents/{agent_id}/schedule", {"interval_seconds": 600, "enabled": False}, format="json")
    make_due(agent_id)
    assert agent_schedules_run_due() == []
    AgentSchedule.objects.filter(agent_id=agent_id).update(enabled=True, paused_reason="Paused after 3 failed runs")
    assert agent_schedules_run_due() == []
    assert not AgentRun.objects.exists()


def test_slot_is_skipped_while_a_run_is_under_way(api, agent_id):
    api.put(f"/api/agents/{agent_id}/schedule", {"interval_seconds": 600}, format="json")
    AgentRun.objects.create(agent_id=agent_id, message="long job", model="passthrough",
                            status=AgentRun.Status.RUNNING)
    make_due(agent_id)
    assert agent_schedules_run_due() == []
    assert AgentRun.objects.filter(agent_id=agent_id).count() == 1
    assert AgentSchedule.objects.get(agent_id=agent_id).next_run_at > timezone.now()  # the slot is gone


def test_failed_runs_in_a_row_pause_the_schedule_with_the_reason(api, settings, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    settings.ANTHROPIC_API_KEY = ""
    settings.ANTHROPIC_BASE_URL = ""
    settings.AGENT_SCHEDULE_MAX_FAILURES = 3
    agent_id = create(api, {"time": TIME_SERVER}, model="sonnet")["agent_id"]
    url = f"/api/agents/{agent_id}/schedule"
    api.put(url, {"interval_seconds": 600}, format="json")
    for failures in (1, 2, 3):
        make_due(agent_id)
        assert len(agent_schedules_run_due()) == 1
        assert AgentSchedule.objects.get(agent_id=agent_id).consecutive_failures == failures
    runs = AgentRun.objects.filter(agent_id=agent_id)
    assert [r.status for r in runs] == [AgentRun.Status.FAILED] * 3
    assert {r.trigger for r in runs} == {AgentRun.Trigger.SCHEDULE}

    shown = api.get(url).json()
    assert shown["paused"] is True and shown["consecutive_failures"] == 3
    assert "Anthropic API key not configured" in shown["paused_reason"]
    make_due(agent_id)
    assert agent_schedules_run_due() == []  # paused

    resumed = api.put(url, {"interval_seconds": 600}, format="json").json()
    assert resumed["paused"] is False and resumed["consecutive_failures"] == 0


def test_a_success_resets_the_failure_count(api, agent_id):
    api.put(f"/api/agents/{agent_id}/schedule", {"interval_seconds": 600}, format="json")
    AgentSchedule.objects.filter(agent_id=agent_id).update(consecutive_failures=2)
    make_due(agent_id)
    agent_schedules_run_due()
    assert AgentSchedule.objects.get(agent_id=agent_id).consecutive_failures == 0


def test_messages_sent_by_the_client_do_not_touch_the_schedule(api, agent_id):
    api.put(f"/api/agents/{agent_id}/schedule", {"interval_seconds": 600}, format="json")
    AgentSchedule.objects.filter(agent_id=agent_id).update(consecutive_failures=2)
    assert api.post(f"/api/agents/{agent_id}/messages", {"message": "hi"}, format="json").status_code == 200
    assert AgentRun.objects.get(agent_id=agent_id).trigger == AgentRun.Trigger.MESSAGE
    assert AgentSchedule.objects.get(agent_id=agent_id).consecutive_failures == 2


def _agent_validated_by_the_worker(api) -> str:
    agent_id = api.post("/api/agents/create", {"mcp_config": {"mcpServers": {"time": TIME_SERVER}},
                                               "user_prompt": "Time in UTC", "workflow": "Get the time",
                                               "model": "passthrough"}, format="json").json()["agent_id"]
    wait_until(lambda: api.get(f"/api/agents/{agent_id}").json()["status"], lambda s: s in ("ready", "failed"))
    return agent_id


@pytest.mark.worker
def test_real_worker_runs_the_tick_task_by_name(celery_worker, api):
    agent_id = _agent_validated_by_the_worker(api)
    api.put(f"/api/agents/{agent_id}/schedule", {"cron": "* * * * *"}, format="json")
    make_due(agent_id)
    assert app.send_task("agents_app.tasks.agent_schedules_tick").get(timeout=60) == 1
    run = wait_until(lambda: AgentRun.objects.filter(agent_id=agent_id).first(),
                     lambda r: r is not None and r.status in ("succeeded", "failed"))
    assert run.trigger == AgentRun.Trigger.SCHEDULE and run.status == AgentRun.Status.SUCCEEDED, run.error


@pytest.fixture
def beat_and_worker(transactional_db, redis_url, settings, tmp_path):
    """A real worker and a real `celery beat` sending the schedules' tick every 2 s to it."""
    workers = celery_worker_process(settings, redis_url, concurrency=2,
                                    extra_env={"AGENT_WARM_SERVERS": "0", "AGENT_SCHEDULE_TICK_SECONDS": "2"})
    worker = next(workers)
    log = open(tmp_path / "beat.log", "w")
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "mcpagent", "beat", "-s", str(tmp_path / "schedule"),
                             "--loglevel=INFO"], cwd=ROOT, env=worker.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield worker
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=15)
        log.close()
        workers.close()


@pytest.mark.worker
def test_real_beat_fires_a_due_schedule_once_and_the_run_is_listed(beat_and_worker, api):
    agent_id = _agent_validated_by_the_worker(api)
    schedule = api.put(f"/api/agents/{agent_id}/schedule", {"interval_seconds": 3600}, format="json")
    assert schedule.status_code == 201, schedule.content
    make_due(agent_id)
    runs = wait_until(lambda: api.get(f"/api/agents/{agent_id}/runs").json()["results"],
                      lambda r: any(run["status"] in ("succeeded", "failed") for run in r))
    assert [(run["trigger"], run["status"]) for run in runs] == [("schedule", "succeeded")], runs
    # Ticks go on every 2 s; the slot is taken, and the next one is an hour away.
    time.sleep(5)
    assert AgentRun.objects.filter(agent_id=agent_id).count() == 1
