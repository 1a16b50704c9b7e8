"""Background work of the master agent. Tasks take ids only; never secrets."""

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3)
def analyse_session(session_id: str) -> str:
    from sessions_app.services import session_analyse

    return session_analyse(session_id=session_id).status


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3)
def create_session_agent(session_id: str) -> str | None:
    from agents_app.master.handoff import agent_create_for_session

    return agent_create_for_session(session_id=session_id)
