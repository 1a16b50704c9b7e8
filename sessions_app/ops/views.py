"""The staff dashboard (an admin page: /admin/dashboard/, linked from the admin index)."""

from datetime import timedelta

from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone

from agents_app.models import Agent, AgentRun
from sessions_app.ops import figures
from sessions_app.ops.charts import share, stacked_bars

DEFAULT_DAYS, MAX_DAYS = 30, 365
AGENT_SERIES = [(Agent.Status.READY, "#2e7d32"), (Agent.Status.FAILED, "#c62828")]
RUN_SERIES = [(AgentRun.Status.SUCCEEDED, "#2e7d32"), (AgentRun.Status.FAILED, "#c62828")]


def _days_param(request) -> int:
    try:
        return min(max(int(request.GET.get("days", DEFAULT_DAYS)), 1), MAX_DAYS)
    except ValueError:
        return DEFAULT_DAYS


def dashboard(request):
    days = _days_param(request)
    since = timezone.now() - timedelta(days=days - 1)
    since = since.replace(hour=0, minute=0, second=0, microsecond=0)
    agent_days = figures.agents_per_day(since=since)
    run_days = figures.runs_per_day(since=since)
    servers = figures.server_figures(since=since)
    used = figures.most_used_servers(servers)
    failing = figures.servers_by_validation_failures(servers)
    health = figures.catalogue_health()
    top_used = max((s.agents for s in used), default=0)
    top_failing = max((s.failures for s in failing), default=0)
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "days": days,
        "day_choices": [7, 30, 90, 365],
        "agents_chart": stacked_bars(agent_days, AGENT_SERIES),
        "agents_total": sum(d.total for d in agent_days),
        "success_rate": figures.creation_success_rate(agent_days),
        "runs_chart": stacked_bars(run_days, RUN_SERIES),
        "runs_total": sum(d.total for d in run_days),
        "runs_failed": sum(d.counts.get(AgentRun.Status.FAILED, 0) for d in run_days),
        "used_servers": [(s, share(s.agents, top_used)) for s in used],
        "failing_servers": [(s, share(s.failures, top_failing)) for s in failing],
        "workflow_types": figures.error_rates_by_workflow_type(since=since),
        "no_plan": figures.NO_PLAN,
        "health": health,
        "status_bars": [(status, n, share(n, health.total)) for status, n in health.by_status.items()],
    }
    request.current_app = admin.site.name
    return TemplateResponse(request, "ops/dashboard.html", context)
