"""Celery tasks of sessions_app. Tasks take ids (never secrets) and return statuses or counts (never values)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from mcpagent.vault.oauth_flow import states_purge_expired
from sessions_app import handoff, polling, services
from sessions_app.credentials import credentials_purge_expired, materialized_files_sweep
from sessions_app.services import ANALYSE_SESSION_TASK, CREATE_SESSION_AGENT_TASK


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def purge_expired_credentials() -> dict[str, int]:
    """Beat task (every CREDENTIAL_PURGE_INTERVAL_SECONDS): delete expired and orphaned credentials and files,
    auditing each deletion as `expire`; also remove decrypted-file folders that dead processes left behind
    (logged, not counted: the folders are shared by every process on the host), and OAuth authorization links that
    were used or expired."""
    materialized_files_sweep()
    states_purge_expired()
    return credentials_purge_expired()


@shared_task(name=ANALYSE_SESSION_TASK, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True,
             max_retries=3)
def analyse_session(session_id: str) -> str:
    """Run the master agent on the session's request and record the plan."""
    try:
        return services.session_analyse(session_id=session_id).status
    finally:
        polling.analysis_finished()


@shared_task(name=CREATE_SESSION_AGENT_TASK, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True,
             max_retries=3)
def create_session_agent(session_id: str) -> str | None:
    """Create and validate the agent for a session whose credentials are complete."""
    return handoff.agent_create_for_session(session_id=session_id)
