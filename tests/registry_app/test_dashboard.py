"""The staff dashboard: figures from a known history, staff only, a fixed number of queries."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sessions_app.ops import figures
from tests.registry_app.test_admin import make_server
from tests.registry_app.usage_data import build_usage, make_agent

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("admin-dashboard")


@pytest.fixture
def usage():
    slack = make_server(name="Slack", slug="slack")
    notion = make_server(name="Notion", slug="notion", sources=("docker",))
    gmail = make_server(name="Gmail", slug="gmail", status="deprecated")
    client = build_usage(slack, notion, gmail)
    return {"slack": slack, "notion": notion, "gmail": gmail, "client": client}


def test_figures_from_a_known_history(usage):
    from datetime import timedelta

    from django.utils import timezone

    since = timezone.now() - timedelta(days=29)
    agent_days = figures.agents_per_day(since=since)
    assert len(agent_days) == 30
    assert sum(d.total for d in agent_days) == 5
    assert figures.creation_success_rate(agent_days) == pytest.approx(3 / 5)
    run_days = figures.runs_per_day(since=since)
    assert sum(d.counts.get("succeeded", 0) for d in run_days) == 2
    assert sum(d.counts.get("failed", 0) for d in run_days) == 1

    servers = figures.server_figures(since=since)
    used = {s.slug: (s.agents, s.validations, s.failures) for s in figures.most_used_servers(servers)}
    assert used == {"slack": (3, 3, 1), "gmail": (2, 2, 0), "notion": (2, 2, 1)}
    assert figures.most_used_servers(servers)[0].slug == "slack"
    failing = [(s.slug, s.failures) for s in figures.servers_by_validation_failures(servers)]
    assert sorted(failing) == [("notion", 1), ("slack", 1)]

    types = {w.workflow_type: (w.agents, w.agents_failed, w.runs, w.runs_failed)
             for w in figures.error_rates_by_workflow_type(since=since)}
    assert types == {"gmail": (2, 1, 2, 1), "slack": (2, 1, 1, 0), figures.NO_PLAN: (1, 0, 0, 0)}

    # The last two days only: the agents of 2 and 3 days ago are out.
    recent = figures.server_figures(since=timezone.now() - timedelta(hours=30))
    assert {s.slug: s.agents for s in recent}["slack"] == 1

    health = figures.catalogue_health()
    assert health.by_status == {"active": 2, "deprecated": 1, "hidden": 0}
    by_source = {row["source"]: row for row in health.by_source}
    assert by_source["official"]["total"] == 3 and by_source["official"]["deprecated"] == 1
    assert by_source["docker"]["total"] == 1


def test_server_usage_for_the_curation_columns(usage):
    got = figures.server_usage(["slack", "notion", "gmail", "unused"])
    assert (got["slack"].times_chosen, got["slack"].agents_using, got["slack"].agents_total) == (2, 2, 3)
    assert got["slack"].last_validation_ok is True  # today's success is newer than the failure 3 days ago
    assert (got["gmail"].times_chosen, got["gmail"].agents_using) == (2, 1)
    assert (got["notion"].validations, got["notion"].validation_failures) == (2, 1)
    assert got["unused"] == figures.ServerUsage()


def test_dashboard_page_renders_charts_for_staff(admin_client, usage):
    index = admin_client.get(reverse("admin:index"))
    assert DASHBOARD in index.content.decode(), "the admin index links to the dashboard"

    response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    for section in ("ops-agents", "ops-runs", "ops-used-servers", "ops-workflow-types", "ops-catalogue",
                    "ops-validation-failures"):
        assert f'id="{section}"' in html
    assert len(re.findall(r'<rect class="ops-bar" data-series="ready"', html)) == 2  # today and 2 days ago
    assert 'data-series="failed"' in html
    assert "60 %" in html  # creation success 3 of 5
    assert "<script" not in html.split('id="ops-dashboard"')[1], "the charts need no script"


def test_dashboard_is_staff_only(client, django_user_model):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    user = django_user_model.objects.create_user("plain", password="a-long-password-123")
    client.force_login(user)
    assert client.get(DASHBOARD).status_code == 302  # not staff: back to the login


def test_dashboard_queries_do_not_grow_with_data(admin_client, usage):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(DASHBOARD, {"days": "90"}).status_code == 200
        return len(captured)

    few = queries()
    for n in range(40):
        make_agent(usage["client"], servers={"slack": n % 2 == 0, f"other-{n}": None}, status="ready",
                   days_ago=n % 20, runs=("succeeded", "failed")[: n % 3])
    assert queries() == few


def test_bad_period_falls_back_to_the_default(admin_client):
    assert admin_client.get(DASHBOARD, {"days": "x"}).status_code == 200
    assert admin_client.get(DASHBOARD, {"days": "100000"}).context["days"] == 365
