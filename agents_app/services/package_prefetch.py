"""Package prefetch for catalogue servers: the npm/PyPI packages they would be started with are fetched into the
cache while the user is still gathering credentials, so that validation does not wait for them."""

import logging

from django.conf import settings
from kombu.exceptions import OperationalError as BrokerError

from agents_app import mcp_config
from agents_app.queueing import PACKAGES_PREFETCH_TASK, task_send
from agents_app.sandbox import prefetch
from agents_app.services.catalogue import pick_recipe
from registry_app.models import McpServer

logger = logging.getLogger(__name__)


def catalogue_packages_prefetch(*, server_slugs: list[str]) -> dict[str, str]:
    """Prefetch the package each catalogue server would be started with ({package: outcome})."""
    launches = []
    for server in McpServer.objects.filter(slug__in=server_slugs).prefetch_related("launch_recipes"):
        recipe = pick_recipe(list(server.launch_recipes.all()))
        if recipe is not None and recipe.kind != "remote":
            entry = mcp_config.entry_from_recipe(recipe, env_keys=[], header_keys=[])
            launches.append((entry.get("command", ""), entry.get("args", [])))
    return prefetch.prefetch_all(launches)


def catalogue_packages_prefetch_queue(*, server_slugs: list[str]) -> None:
    """Start the prefetch in a worker (not inline: without a broker it would hold up the chat reply)."""
    if settings.CELERY_TASK_ALWAYS_EAGER or not server_slugs:
        return
    try:
        task_send(PACKAGES_PREFETCH_TASK, list(server_slugs), expires=settings.PACKAGE_PREFETCH_EXPIRES_SECONDS)
    except BrokerError:
        logger.warning("package prefetch not queued: the task queue is unavailable")
