"""The per-client caps on agent creations and runs under way, so that one client cannot fill the worker queue."""

from typing import Any

from django.conf import settings

from agents_app.selectors import creations_in_progress_count, runs_in_progress_count
from mcpagent.errors import ApplicationError
from mcpagent.models import ApiClient


def in_progress_check(*, client: ApiClient, kind: str, excluding_session: Any = None) -> None:
    """429 too_many_in_progress when the client already has its limit of agent creations or runs under way, so
    one client cannot fill the worker queue. Call inside the transaction that starts the new one: the client's
    row stays locked until it commits, so concurrent requests of one client are counted one after another."""
    setting = {"creations": "AGENT_MAX_CONCURRENT_CREATIONS_PER_CLIENT",
               "runs": "AGENT_MAX_CONCURRENT_RUNS_PER_CLIENT"}[kind]
    limit = getattr(settings, setting)
    if limit <= 0:
        return
    list(ApiClient.objects.select_for_update().filter(pk=client.pk).values_list("pk"))
    if kind == "creations":
        count = creations_in_progress_count(client=client, excluding_session=excluding_session)
        what = "agent creations"
    else:
        count = runs_in_progress_count(client=client)
        what = "agent runs"
    if count >= limit:
        raise ApplicationError(
            f"This client already has {count} {what} in progress, the most allowed at once ({setting}={limit}); "
            "try again when one has finished.",
            code="too_many_in_progress", status=429, details={"limit": limit, "in_progress": count, "setting": setting},
        )
