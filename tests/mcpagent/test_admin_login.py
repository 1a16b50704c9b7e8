"""Admin login: lockout after repeated failures (django-axes) and the standard password validators."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "a-long-and-unusual-passphrase-42"


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)


def _login(client: Client, password: str, username: str = "ops", **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def test_correct_password_logs_in(staff):
    response = _login(Client(), PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_address_is_locked_out_after_repeated_failures(staff, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        assert _login(client, "wrong").status_code == 200  # the form again, with its error
    assert _login(client, "wrong").status_code == 429
    # Locked: even the right password is refused now.
    response = _login(client, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_user_name_is_locked_out_from_other_addresses_too(staff, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for address in ("10.0.0.1", "10.0.0.2"):
        _login(Client(), "wrong", REMOTE_ADDR=address)
    assert _login(Client(), PASSWORD, REMOTE_ADDR="10.0.0.3").status_code == 429


def test_forwarded_for_header_does_not_escape_the_lockout(staff, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for n in range(2):
        _login(Client(), "wrong", username=f"nobody{n}", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert _login(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.77").status_code == 429


def test_success_before_the_limit_forgets_earlier_failures(staff, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert _login(client, "wrong").status_code == 200


@pytest.mark.parametrize("password, problem", [
    ("Sh0rt!x", "too short"),
    ("password1234", "too common"),
    ("839201748302", "entirely numeric"),
    ("storekeeper-1", "too similar"),  # to the user name
])
def test_admin_refuses_weak_passwords(staff, password, problem):
    client = Client()
    client.force_login(staff)
    response = client.post("/admin/auth/user/add/", {
        "username": "storekeeper", "password1": password, "password2": password,
        "usable_password": "true",
    })
    assert response.status_code == 200, response.get("Location")
    assert problem in response.content.decode()
    assert not get_user_model().objects.filter(username="storekeeper").exists()
