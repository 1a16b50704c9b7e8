"""An agent's progress list: the timestamped steps of its creation and validation that clients poll."""

from typing import Any

from django.db import transaction
from django.utils import timezone

from agents_app.models import Agent


def progress_entry(step: str, detail: str = "", **extra: Any) -> dict:
    return {"at": timezone.now().isoformat(), "step": step, "detail": detail, **extra}


def progress_append(agent_id: Any, entry: dict, **fields: Any) -> None:
    with transaction.atomic():
        agent = Agent.objects.select_for_update().filter(pk=agent_id).first()
        if agent is None:  # deleted meanwhile (agent_delete)
            return
        agent.progress = [*agent.progress, entry]
        for key, value in fields.items():
            setattr(agent, key, value)
        agent.save()
