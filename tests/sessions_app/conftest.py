"""Fixtures for sessions_app tests: sessions and agents per client, a staff user, and log capture."""

import secrets as _secrets

import pytest
from django.db import connection

from tests.sessions_app.logcapture import start_capture


@pytest.fixture
def log_capture():
    """Every log record at DEBUG (root, django incl. SQL with parameters, celery, ours), raw.
    Use `log_capture.assert_clean([secret, ...])` at the end of the test."""
    capture, stop = start_capture()
    old_debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True  # SQL and its parameters are logged too: a value must not be among them
    try:
        yield capture
    finally:
        connection.force_debug_cursor = old_debug_cursor
        stop()


@pytest.fixture
def session_x(api):
    from sessions_app.models import Session

    return Session.objects.create(client=api.client_obj)


@pytest.fixture
def session_y(other_api):
    from sessions_app.models import Session

    return Session.objects.create(client=other_api.client_obj)


@pytest.fixture
def agent_x(api, session_x):
    from agents_app.models import Agent

    return Agent.objects.create(client=api.client_obj, session=session_x, name="agent-x")


@pytest.fixture
def staff_client(db, client):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-" + _secrets.token_hex(8))
    client.force_login(user)
    client.user = user
    return client

