"""The figures staff see: agent creations, runs, server usage, error rates by workflow type, catalogue health.

Counts over columns are ORM aggregations (one grouped query each). Which catalogue servers an agent uses, and
how their validation went, live inside JSON documents (an agent's `mcp_config.mcpServers.<name>.catalogue`, its
`metadata.validation.servers.<name>.ok`, the `progress` entry of that server; a session plan's `servers[].slug`):
the ORM cannot unnest those, so they are read by a few plain SQL statements, each one pass over the table, never
one query per server.

Workflow type: the first need of the plan the analyzer made for the agent's chat session (e.g. `gmail` for
"watch my Gmail for invoices, file them in Notion, ping me on Slack"): the service the workflow starts from.
Agents created directly through `POST /api/agents/create` have no plan and count as "direct (no plan)".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import connection
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import TruncDate
from django.utils import timezone

from agents_app.models import Agent, AgentRun
from registry_app.models import McpServer, ServerSource
from sessions_app.models import Session

NO_PLAN = "direct (no plan)"

# One row per (agent, catalogue server in its config): slug, agent status, whether that server's last
# validation passed (null: not validated yet) and, with VALIDATED_AT, when (that server's progress entry).
_VALIDATED_AT = """,
           (SELECT max((p->>'at')::timestamptz)
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(a.progress) = 'array' THEN a.progress
                                             ELSE '[]'::jsonb END) p
             WHERE p->>'server' = e.key AND p->>'step' IN ('server_ok', 'server_failed')) AS validated_at"""
_AGENT_SERVERS_SQL = f"""
    SELECT e.value->>'catalogue' AS slug, a.id AS agent_id, a.status AS status,
           (a.metadata->'validation'->'servers'->e.key->>'ok')::boolean AS ok, a.created_at AS created_at
           {{validated_at}}
      FROM {Agent._meta.db_table} a,
           jsonb_each(CASE WHEN jsonb_typeof(a.mcp_config->'mcpServers') = 'object' THEN a.mcp_config->'mcpServers'
                           ELSE '{{{{}}}}'::jsonb END) e
     WHERE jsonb_typeof(e.value) = 'object' AND e.value ? 'catalogue'
"""

_PLAN_SERVERS_SQL = f"""
    SELECT s->>'slug' AS slug, count(DISTINCT sess.id) AS sessions
      FROM {Session._meta.db_table} sess,
           jsonb_array_elements(CASE WHEN jsonb_typeof(sess.context->'plan'->'servers') = 'array'
                                     THEN sess.context->'plan'->'servers' ELSE '[]'::jsonb END) s
     WHERE jsonb_typeof(s) = 'object' AND s->>'slug' = ANY(%s)
     GROUP BY 1
"""


@dataclass
class ServerUsage:
    """How agents and plans use one catalogue server."""

    times_chosen: int = 0  # chat sessions whose plan chose it
    agents_using: int = 0  # ready agents configured with it
    agents_total: int = 0  # agents configured with it, whatever their state
    validations: int = 0
    validation_failures: int = 0
    last_validation_ok: bool | None = None
    last_validated_at: object = None


def server_usage(slugs: list[str]) -> dict[str, ServerUsage]:
    """Usage of the given servers, in two queries whatever their number."""
    usage = {slug: ServerUsage() for slug in slugs}
    if not slugs:
        return usage
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT slug, count(DISTINCT agent_id) FILTER (WHERE status = %s), count(DISTINCT agent_id),
                   count(*) FILTER (WHERE ok IS NOT NULL), count(*) FILTER (WHERE ok = false),
                   (array_agg(ok ORDER BY validated_at DESC NULLS LAST) FILTER (WHERE ok IS NOT NULL))[1],
                   max(validated_at)
              FROM ({_AGENT_SERVERS_SQL.format(validated_at=_VALIDATED_AT)}) rows
             WHERE slug = ANY(%s)
             GROUP BY slug
            """,
            [Agent.Status.READY, slugs],
        )
        for slug, ready, total, validations, failures, last_ok, last_at in cursor.fetchall():
            usage[slug] = ServerUsage(agents_using=ready, agents_total=total, validations=validations,
                                      validation_failures=failures, last_validation_ok=last_ok,
                                      last_validated_at=last_at)
        cursor.execute(_PLAN_SERVERS_SQL, [slugs])
        for slug, sessions in cursor.fetchall():
            usage[slug].times_chosen = sessions
    return usage


@dataclass
class RankedServer:
    slug: str
    name: str
    agents: int
    validations: int = 0
    failures: int = 0

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.validations if self.validations else None


def server_figures(*, since) -> list[RankedServer]:
    """Every catalogue server the agents created since `since` use, with its agent and validation counts, in one
    pass over the agents; most_used_servers and servers_by_validation_failures rank them."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT rows.slug, coalesce(srv.name, rows.slug), count(DISTINCT agent_id),
                   count(*) FILTER (WHERE ok IS NOT NULL), count(*) FILTER (WHERE ok = false)
              FROM ({_AGENT_SERVERS_SQL.format(validated_at="")}) rows
              LEFT JOIN {McpServer._meta.db_table} srv ON srv.slug = rows.slug
             WHERE rows.created_at >= %s
             GROUP BY rows.slug, srv.name
            """,
            [since],
        )
        return [RankedServer(*row) for row in cursor.fetchall()]


def most_used_servers(servers: list[RankedServer], limit: int = 15) -> list[RankedServer]:
    """By the number of agents using them."""
    return sorted(servers, key=lambda s: (-s.agents, -s.failures, s.slug))[:limit]


def servers_by_validation_failures(servers: list[RankedServer], limit: int = 15) -> list[RankedServer]:
    """By failed validations (only servers with at least one)."""
    return sorted((s for s in servers if s.failures), key=lambda s: (-s.failures, -s.agents, s.slug))[:limit]


@dataclass
class Day:
    day: date
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _days(since_day: date, today: date) -> list[date]:
    return [since_day + timedelta(days=n) for n in range((today - since_day).days + 1)]


def agents_per_day(*, since) -> list[Day]:
    """Agents created per day, split by their state now (ready, failed, still creating/validating)."""
    rows = (Agent.objects.filter(created_at__gte=since).annotate(day=TruncDate("created_at"))
            .values("day", "status").annotate(n=Count("id")).order_by())
    return _by_day(rows, since, key="status")


def runs_per_day(*, since) -> list[Day]:
    """Agent runs started per day, by outcome (succeeded, failed, queued/running)."""
    rows = (AgentRun.objects.filter(created_at__gte=since).annotate(day=TruncDate("created_at"))
            .values("day", "status").annotate(n=Count("id")).order_by())
    return _by_day(rows, since, key="status")


def _by_day(rows, since, *, key: str) -> list[Day]:
    days = {d: Day(d) for d in _days(timezone.localdate(since), timezone.localdate())}
    for row in rows:
        day = days.setdefault(row["day"], Day(row["day"]))
        day.counts[row[key]] = day.counts.get(row[key], 0) + row["n"]
    return [days[d] for d in sorted(days)]


def creation_success_rate(days: list[Day]) -> float | None:
    """Ready agents among those whose creation finished (ready or failed)."""
    ready = sum(d.counts.get(Agent.Status.READY, 0) for d in days)
    failed = sum(d.counts.get(Agent.Status.FAILED, 0) for d in days)
    return ready / (ready + failed) if ready + failed else None


@dataclass
class WorkflowTypeErrors:
    workflow_type: str
    agents: int
    agents_failed: int
    runs: int
    runs_failed: int

    @property
    def creation_error_rate(self) -> float | None:
        return self.agents_failed / self.agents if self.agents else None

    @property
    def run_error_rate(self) -> float | None:
        return self.runs_failed / self.runs if self.runs else None


def error_rates_by_workflow_type(*, since, limit: int = 20) -> list[WorkflowTypeErrors]:
    """Per workflow type (see the module docstring): agents created since `since` and how many failed, their runs
    and how many failed; most agents first."""
    rows = (
        Agent.objects.filter(created_at__gte=since)
        .annotate(workflow_type=KeyTextTransform(
            "key", KeyTransform("0", KeyTransform("needs", KeyTransform("plan", "session__context")))))
        .values("workflow_type")
        .annotate(
            n_agents=Count("id", distinct=True),
            n_agents_failed=Count("id", filter=Q(status=Agent.Status.FAILED), distinct=True),
            n_runs=Count("runs", distinct=True),
            n_runs_failed=Count("runs", filter=Q(runs__status=AgentRun.Status.FAILED), distinct=True),
        )
        .order_by("-n_agents", "workflow_type")[:limit]
    )
    return [WorkflowTypeErrors(workflow_type=row["workflow_type"] or NO_PLAN, agents=row["n_agents"],
                               agents_failed=row["n_agents_failed"], runs=row["n_runs"],
                               runs_failed=row["n_runs_failed"])
            for row in rows]


@dataclass
class CatalogueHealth:
    by_status: dict[str, int]
    by_source: list[dict]  # {"source", "active", "deprecated", "hidden", "total"}
    total: int


def catalogue_health() -> CatalogueHealth:
    """Servers by status, and by source and status (a server listed by two sources counts under both)."""
    by_status = dict(McpServer.objects.values_list("status").annotate(n=Count("id")).order_by())
    statuses = [s.value for s in McpServer.Status]
    rows = (ServerSource.objects.values("source")
            .annotate(total=Count("server", distinct=True),
                      **{s: Count("server", filter=Q(server__status=s), distinct=True) for s in statuses})
            .order_by("-total", "source"))
    return CatalogueHealth(by_status={s: by_status.get(s, 0) for s in statuses}, by_source=list(rows),
                           total=sum(by_status.values()))
