"""Celery tasks of sessions_app. Tasks take ids (never secrets) and return counts (never values)."""

from celery import shared_task
from django.db import OperationalError

from sessions_app.credentials import credentials_purge_expired, materialized_files_sweep


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def purge_expired_credentials() -> dict[str, int]:
    """Beat task (every CREDENTIAL_PURGE_INTERVAL_SECONDS): delete expired and orphaned credentials and files,
    auditing each deletion as `expire`; also remove decrypted-file folders that dead processes left behind
    (logged, not counted: the folders are shared by every process on the host)."""
    materialized_files_sweep()
    return credentials_purge_expired()
