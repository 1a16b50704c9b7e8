"""Production settings pass `check --deploy`; development and tests keep working over plain http."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("SECURE_", "SESSION_COOKIE", "CSRF_COOKIE", "CSP_"))}
    environment.update(env, LOG_LEVEL="WARNING")
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)


def test_production_settings_pass_the_deploy_check_without_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING",
                     DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="api.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_the_development_key_keeps_plain_http_settings():
    # Tests run with DEBUG off and the built-in key: nothing may force https on 127.0.0.1.
    assert not django_settings.PRODUCTION
    assert not django_settings.SECURE_SSL_REDIRECT and django_settings.SECURE_HSTS_SECONDS == 0
    assert not django_settings.SESSION_COOKIE_SECURE and not django_settings.CSRF_COOKIE_SECURE


def test_plain_http_works_in_development(anon_api, db):
    response = anon_api.get("/api/health")
    assert response.status_code == 200 and "Strict-Transport-Security" not in response


@pytest.fixture
def production_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_production_redirects_http_but_not_health_checks(anon_api, db, production_https):
    response = anon_api.get("/api/servers/")
    assert response.status_code == 301 and response["Location"] == "https://testserver/api/servers/"
    assert anon_api.get("/api/health").status_code == 200  # load balancers probe over http
    assert anon_api.get("/metrics").status_code == 404  # not redirected; off unless configured


def test_production_behind_a_proxy_sends_hsts(anon_api, db, production_https):
    response = anon_api.get("/api/health", HTTP_X_FORWARDED_PROTO="https")
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_every_response_has_the_content_security_policy(anon_api, db):
    for url in ("/api/health", "/api/docs/", "/admin/login/"):
        policy = anon_api.get(url)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-eval" not in policy and "https:" not in policy


def test_csp_mode_is_validated():
    result = _manage("check", CSP_MODE="sometimes")
    assert result.returncode != 0 and "CSP_MODE must be" in result.stderr
