"""GET /metrics: off unless configured, guarded by token and/or addresses; our own metrics are served and move."""

import pytest
from prometheus_client import REGISTRY

from mcpagent.metrics import SANDBOX_LIMIT_HITS
from sessions_app.credentials import credentials_record_validation, credentials_store
from sessions_app.models import Session

OUR_METRICS = [
    "mcpagent_http_requests_total",
    "mcpagent_http_request_duration_seconds",
    "mcpagent_search_duration_seconds",
    "mcpagent_analysis_duration_seconds",
    "mcpagent_agent_creations_total",
    "mcpagent_agent_runs_total",
    "mcpagent_credential_validation_failures_total",
    "mcpagent_sandbox_limit_hits_total",
]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_are_off_without_configuration(anon_api, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert anon_api.get("/metrics").status_code == 404


def test_token_is_required_when_set(anon_api, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "scrape-me-0123456789", []
    missing = anon_api.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert anon_api.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert anon_api.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-me-0123456789").status_code == 401


def test_with_the_token_our_metrics_are_served_as_prometheus_text(anon_api, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "scrape-me-0123456789", []
    SANDBOX_LIMIT_HITS.labels(limit="memory").inc()
    anon_api.get("/api/health")
    response = anon_api.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for name in OUR_METRICS:
        assert f"# TYPE {name} " in text, name
    assert 'mcpagent_sandbox_limit_hits_total{limit="memory"}' in text
    assert 'mcpagent_http_requests_total{method="GET",route="api/health",status="200"}' in text


def test_allowed_addresses_alone_or_with_the_token(anon_api, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.0.0.0/8", "192.0.2.7"]
    assert anon_api.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    assert anon_api.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert anon_api.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    settings.METRICS_TOKEN = "scrape-me-0123456789"
    assert anon_api.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401
    assert anon_api.get("/metrics", REMOTE_ADDR="10.1.2.3",
                        HTTP_AUTHORIZATION="Bearer scrape-me-0123456789").status_code == 200
    assert anon_api.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789").status_code == 403


def test_unmatched_paths_share_one_route_label(anon_api, db):
    before = sample("mcpagent_http_requests_total", method="GET", route="<unmatched>", status="404")
    anon_api.get("/api/no-such-endpoint-1")
    anon_api.get("/api/no-such-endpoint-2")
    assert sample("mcpagent_http_requests_total", method="GET", route="<unmatched>", status="404") == before + 2


def test_search_is_timed_also_when_it_refuses_the_query(api):
    before = sample("mcpagent_search_duration_seconds_count")
    assert api.get("/api/servers/search", {"q": "x" * 5000}).status_code == 400
    assert sample("mcpagent_search_duration_seconds_count") == before + 1


def test_analysis_is_timed(api):
    before = sample("mcpagent_analysis_duration_seconds_count")
    assert api.post("/api/chat", {"message": "Send a Slack message every morning"}, format="json").status_code == 200
    assert sample("mcpagent_analysis_duration_seconds_count") == before + 1


def test_refused_credential_values_are_counted(api):
    session = Session.objects.create(client=api.client_obj)
    before = sample("mcpagent_credential_validation_failures_total", stage="format")
    result = credentials_store(client=api.client_obj, session=session, server="svc", actor=api.client_obj,
                               reason="test", values={"GITHUB_TOKEN": "xoxb-this-is-not-github-" + "q" * 20})
    assert not result.ok
    assert sample("mcpagent_credential_validation_failures_total", stage="format") == before + 1
    before = sample("mcpagent_credential_validation_failures_total", stage="server")
    for accepted in (True, False):
        credentials_record_validation(client=api.client_obj, session=session, server="svc", accepted=accepted,
                                      actor=api.client_obj, reason="test")
    assert sample("mcpagent_credential_validation_failures_total", stage="server") == before + 1


@pytest.mark.parametrize("value", ["not-an-address", "10.0.0.0/33"])
def test_a_bad_allowed_address_is_a_configuration_error(anon_api, db, settings, value):
    from django.core.exceptions import ImproperlyConfigured

    settings.METRICS_ALLOWED_IPS = [value]
    with pytest.raises(ImproperlyConfigured):
        anon_api.get("/metrics")
