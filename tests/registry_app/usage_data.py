"""A small, known history of agents, runs and chat plans over catalogue servers, written as the product writes
them (mcp_config entries naming their catalogue slug, validation results in metadata and progress, plans in the
session context), for the dashboard and curation-admin tests."""

from datetime import timedelta

from django.utils import timezone

from agents_app.models import Agent, AgentRun
from mcpagent.services import api_client_create
from registry_app.models import McpServer, ServerSource
from sessions_app.models import Session


def _plan(*needs_and_slugs: tuple[str, str]) -> dict:
    return {"plan": {
        "request": "test", "analyzer": "offline", "notes": [], "workflow": [],
        "needs": [{"key": need, "name": need, "kind": "service", "phrase": need} for need, _ in needs_and_slugs],
        "servers": [{"need": need, "slug": slug, "name": slug, "repository_url": "", "confidence": 1.0, "reason": ""}
                    for need, slug in needs_and_slugs],
    }}


def make_agent(client, *, servers: dict[str, bool | None], status: str, session=None, days_ago: int = 0,
               runs: tuple[str, ...] = ()) -> Agent:
    """An agent configured with catalogue servers {slug: validation ok (None: not validated)}."""
    at = timezone.now() - timedelta(days=days_ago)
    names = {slug: f"srv-{slug}" for slug in servers}
    agent = Agent.objects.create(
        client=client, session=session, status=status, name="agent",
        mcp_config={"mcpServers": {names[s]: {"command": "uvx", "args": [s], "catalogue": s} for s in servers}},
        metadata={"validation": {"seconds": 1.0, "servers": {
            names[s]: {"ok": ok, "seconds": 0.5, "server_info": {}} for s, ok in servers.items() if ok is not None}}},
        progress=[{"at": at.isoformat(), "step": "server_ok" if ok else "server_failed", "detail": "",
                   "server": names[s]} for s, ok in servers.items() if ok is not None],
    )
    Agent.objects.filter(pk=agent.pk).update(created_at=at)
    for status_ in runs:
        run = AgentRun.objects.create(agent=agent, status=status_, message="go", model="passthrough")
        AgentRun.objects.filter(pk=run.pk).update(created_at=at)
    return agent


def build_usage(slack: McpServer, notion: McpServer, gmail: McpServer):
    """3 chat sessions (2 start from gmail, 1 from slack) and 5 agents:
    - gmail+slack, ready today, runs succeeded+failed;   - gmail+notion, failed today (notion failed validation)
    - slack, ready 2 days ago, run succeeded;            - slack, failed 3 days ago (slack failed validation)
    - notion, direct API agent without plan, ready today (validation ok)."""
    client, _ = api_client_create(name="usage-client")
    s1 = Session.objects.create(client=client, context=_plan(("gmail", gmail.slug), ("slack", slack.slug)))
    s2 = Session.objects.create(client=client, context=_plan(("gmail", gmail.slug), ("notion", notion.slug)))
    s3 = Session.objects.create(client=client, context=_plan(("slack", slack.slug)))
    make_agent(client, servers={gmail.slug: True, slack.slug: True}, status="ready", session=s1,
               runs=("succeeded", "failed"))
    make_agent(client, servers={gmail.slug: True, notion.slug: False}, status="failed", session=s2)
    make_agent(client, servers={slack.slug: True}, status="ready", session=s3, days_ago=2, runs=("succeeded",))
    make_agent(client, servers={slack.slug: False}, status="failed", session=s3, days_ago=3)
    make_agent(client, servers={notion.slug: True}, status="ready")
    for server in (slack, notion, gmail):
        ServerSource.objects.get_or_create(server=server, source="official", source_id=f"official-{server.slug}")
    return client
