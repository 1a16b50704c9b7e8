"""Rate limits through the real API: per client, per IP, and failed authentications per IP."""

import pytest
from rest_framework.test import APIClient

SESSION_URL = "/api/sessions/00000000-0000-0000-0000-000000000000"  # an authenticated call: 404, cheap


@pytest.fixture
def rates(settings):
    """Sets the three rates for one test (the throttles read them at each request)."""

    def set_rates(client: str = "off", ip: str = "off", auth_failure: str = "off") -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"client": client, "ip": ip, "auth_failure": auth_failure},
        }

    return set_rates


def _assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert error["message"]
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"] == {"retry_after_seconds": retry_after}


def test_client_over_its_limit_gets_429_in_error_shape(api, rates):
    rates(client="3/min")
    assert [api.get(SESSION_URL).status_code for _ in range(3)] == [404, 404, 404]
    _assert_throttled(api.get(SESSION_URL))


def test_one_clients_limit_does_not_affect_another(api, other_api, rates):
    rates(client="2/min")
    for _ in range(2):
        api.get(SESSION_URL)
    _assert_throttled(api.get(SESSION_URL))
    assert other_api.get(SESSION_URL).status_code == 404


def test_ip_limit_counts_all_clients_from_one_address(api, other_api, rates):
    rates(ip="3/min")
    assert api.get(SESSION_URL).status_code == 404
    assert other_api.get(SESSION_URL).status_code == 404
    assert api.get(SESSION_URL).status_code == 404
    _assert_throttled(other_api.get(SESSION_URL))
    # Another address has its own count.
    assert other_api.get(SESSION_URL, REMOTE_ADDR="10.1.2.3").status_code == 404


def test_forwarded_for_header_does_not_pick_the_counted_address(api, rates):
    rates(ip="2/min")
    for n in range(2):
        api.get(SESSION_URL, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    _assert_throttled(api.get(SESSION_URL, HTTP_X_FORWARDED_FOR="203.0.113.99"))


def test_invalid_keys_get_429_after_the_failure_limit(db, rates):
    rates(auth_failure="5/min")
    guesser = APIClient()
    statuses = []
    for n in range(8):
        guesser.credentials(HTTP_AUTHORIZATION=f"Bearer mcpa_guess{n}")
        statuses.append(guesser.get(SESSION_URL).status_code)
    assert statuses == [401] * 5 + [429] * 3
    _assert_throttled(guesser.get(SESSION_URL))


def test_requests_without_a_key_count_as_failures(db, rates):
    rates(auth_failure="2/min")
    anonymous = APIClient()
    assert [anonymous.post("/api/chat", {}, format="json").status_code for _ in range(3)] == [401, 401, 429]


def test_default_failure_limit_stops_a_flood_of_invalid_keys(db):
    """The audit's case: hundreds of invalid keys in seconds; the default limit (30/min) answers 429 after 30."""
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Bearer mcpa_invalid")
    statuses = [guesser.get(SESSION_URL).status_code for _ in range(40)]
    assert statuses.count(401) == 30 and statuses[30:] == [429] * 10


def test_valid_key_from_an_address_with_failures_still_works(api, rates):
    rates(auth_failure="2/min")
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Bearer mcpa_invalid")
    for _ in range(3):
        guesser.get(SESSION_URL)
    _assert_throttled(guesser.get(SESSION_URL))
    assert api.get(SESSION_URL).status_code == 404


def test_health_is_not_rate_limited(db, rates):
    rates(ip="1/min")
    anonymous = APIClient()
    assert {anonymous.get("/api/health").status_code for _ in range(3)} <= {200, 503}
