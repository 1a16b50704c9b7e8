"""Hand-offs to Celery workers: tasks sent by name (agents_app's, and sessions_app's chat tasks), and the short
bounded wait for their outcome.

The services send tasks through this module and never import agents_app.tasks, which imports the services to run
them: the dependency points one way, from the tasks to the services."""

from collections.abc import Callable
from typing import Any

from kombu.exceptions import OperationalError as BrokerError

from mcpagent.celery import app
from mcpagent.errors import ApplicationError
from mcpagent.waiting import wait_until

AGENT_VALIDATE_TASK = "agents_app.tasks.agent_validate_task"
AGENT_RUN_TASK = "agents_app.tasks.agent_run_task"
PACKAGES_PREFETCH_TASK = "agents_app.tasks.packages_prefetch_task"


def task_send(name: str, *args: Any, **options: Any) -> None:
    """apply_async of the registered task (each app's AppConfig.ready registers its tasks at start). Unlike
    app.send_task, this runs the task here when CELERY_TASK_ALWAYS_EAGER is set (no broker), and it uses the same
    routes (CELERY_TASK_ROUTES) and options. Raises kombu's OperationalError when the broker is unreachable."""
    app.tasks[name].apply_async(args, **options)


def task_send_or_unavailable(name: str, object_id: Any, *, field: str, abandon: Callable[[str], None]) -> None:
    """task_send for one agent or run (`object_id`). When the broker is unreachable, `abandon(reason)` marks the
    object failed (so it is not left waiting for a job that was never queued) and the request gets a 503
    `queue_unavailable` naming it as `field`."""
    try:
        task_send(name, str(object_id))
    except BrokerError:
        abandon("the task queue is unavailable")
        raise ApplicationError("The task queue is unavailable; try again shortly.", code="queue_unavailable",
                               status=503, details={field: str(object_id)}) from None


def wait_for(predicate_query: Any, *, done: tuple[str, ...], seconds: float) -> str | None:
    """Poll a status column until it is one of `done` or `seconds` pass (a bounded wait: mcpagent.waiting);
    returns the last status."""
    seen: list = [None]

    def finished() -> bool:
        seen[0] = predicate_query.values_list("status", flat=True).first()
        return seen[0] in done

    wait_until(finished, seconds=seconds)
    return seen[0]
