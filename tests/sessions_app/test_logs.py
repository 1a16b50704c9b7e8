"""No secret in any log line, and the redaction that backs this up.

`log_capture` (tests/sessions_app/conftest.py) records every record of every logger at DEBUG, SQL statements
with their parameters included, before any filter: the test proves our code never logs a value. Extend it to a
whole flow with `log_capture.assert_clean([...values...])`."""

import base64
import io
import logging
from io import StringIO

from cryptography.fernet import Fernet
from django.core.management import call_command
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from mcpagent.errors import exception_handler
from mcpagent.logging_filters import REDACTED, RedactSecretsFilter, redact
from sessions_app.credentials import (
    credential_values_for_use,
    credentials_extend_ttl,
    credentials_store,
    file_materialize,
    files_store,
)
from sessions_app.tasks import purge_expired_credentials
from tests.sessions_app.secretscan import fake_secrets
from tests.sessions_app.test_files import private_key_pem, upload


def test_storing_using_rotating_and_uploading_logs_no_secret(api, session_x, agent_x, settings, log_capture):
    settings.ENCRYPTION_KEY = Fernet.generate_key().decode()
    values = fake_secrets()
    client = api.client_obj
    credentials_store(client=client, session=session_x, server="svc", values=values, actor=client, reason="chat")
    # A rejected batch: reasons are logged by key name only.
    bad = {"GITHUB_TOKEN": values["SLACK_BOT_TOKEN"], "OPENAI_API_KEY": values["STRIPE_SECRET_KEY"]}
    assert not credentials_store(client=client, session=session_x, server="svc2", values=bad, actor=client,
                                 reason="chat").ok
    assert credential_values_for_use(client=client, session=session_x, server="svc", actor=client,
                                     reason="agent_create") == values
    pem = private_key_pem().encode()
    env_file = f"API_TOKEN={values['OPENAI_API_KEY']}\n".encode()
    files_store(client=client, session=session_x, actor=client, reason="chat",
                files=[{"filename": "key.pem", "content": base64.b64encode(pem).decode(), "key": "TLS_KEY"}])
    assert upload(api, session_x, "app.env", env_file, key="ENV_FILE").status_code == 201
    assert upload(api, session_x, "../evil.env", env_file).status_code == 400
    assert upload(api, session_x, "x.json", b'{"k": "' + values["NOTION_API_KEY"].encode() + b'"}\x00').status_code == 415
    credentials_extend_ttl(client=client, session=session_x, agent=agent_x, actor=client, reason="agent_create")
    with file_materialize(client=client, agent=agent_x, actor=client, reason="agent_run") as paths:
        assert paths["TLS_KEY"].read_bytes() == pem
    settings.ENCRYPTION_KEY = f"{Fernet.generate_key().decode()},{settings.ENCRYPTION_KEY}"
    call_command("rotate_encryption_key", stdout=StringIO())
    purge_expired_credentials.apply().get()

    assert any(r.name == "mcpagent.vault" for r in log_capture.records)
    assert any(r.name == "django.db.backends" for r in log_capture.records)  # SQL with parameters was captured
    pem_lines = [line for line in pem.splitlines() if not line.startswith(b"-----")]
    log_capture.assert_clean([*values.values(), pem_lines[1], env_file])


def test_capture_would_see_a_logged_secret(log_capture):
    value = fake_secrets()["GITHUB_PERSONAL_ACCESS_TOKEN"]
    logging.getLogger("celery.app.trace").debug("result %s", {"token": value})
    try:
        log_capture.assert_clean([value])
    except AssertionError as error:
        assert "celery.app.trace" in str(error) and value not in str(error)
    else:
        raise AssertionError("the capture missed a logged secret")


def test_redaction_of_known_shapes():
    values = fake_secrets()
    cases = {
        f"token {values['SLACK_BOT_TOKEN']} used": "token [REDACTED] used",
        f"gh={values['GITHUB_PERSONAL_ACCESS_TOKEN']}": "gh=[REDACTED]",
        f"key {values['OPENAI_API_KEY']}.": "key [REDACTED].",
        f"notion {values['NOTION_API_KEY']}": "notion [REDACTED]",
        f"stripe {values['STRIPE_SECRET_KEY']}": "stripe [REDACTED]",
        f"aws {values['AWS_ACCESS_KEY_ID']} ok": "aws [REDACTED] ok",
        "Authorization: Bearer abc.def-ghi_jkl": "Authorization: Bearer [REDACTED]",
        "url postgres://app:hunter2secret@db:5432/x": "url postgres://app:[REDACTED]@db:5432/x",
        "password=correcthorse&user=x": "password=[REDACTED]&user=x",
        '{"client_secret": "GOCSPX-abcdefgh"}': '{"client_secret": "[REDACTED]"}',
        "X-Api-Key: 0123456789abcdef": "X-Api-Key: [REDACTED]",
        "our key mcpa_" + "a" * 43: "our key [REDACTED]",
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY----- done": "[REDACTED] done",
        "nothing secret here, session 42 ok": "nothing secret here, session 42 ok",
    }
    for text, expected in cases.items():
        assert redact(text) == expected, text
    assert values["AWS_SECRET_ACCESS_KEY"] not in redact(f"aws_secret_access_key={values['AWS_SECRET_ACCESS_KEY']}")


def test_the_configured_root_handler_redacts_messages_args_and_tracebacks():
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters)]
    assert handlers, "settings.LOGGING must install RedactSecretsFilter on the root handler"
    handler = handlers[0]
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    token = fake_secrets()["SLACK_BOT_TOKEN"]
    logger = logging.getLogger("some.library")
    try:
        logger.error("calling with %s", token)
        try:
            raise RuntimeError(f"upstream refused token={token}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        handler.setStream(old_stream)
    output = stream.getvalue()
    assert token not in output and output.count(REDACTED) >= 2 and "RuntimeError" in output


def test_validation_errors_never_echo_the_input():
    secret = fake_secrets()["OPENAI_API_KEY"]
    request = Request(APIRequestFactory().post("/api/x", {"type": secret, "n": secret}, format="json"),
                      parsers=[JSONParser()])

    class Input(serializers.Serializer):
        type = serializers.ChoiceField(choices=["credential", "config"])
        n = serializers.IntegerField()

    serializer = Input(data=request.data)
    assert not serializer.is_valid()
    assert secret in str(serializer.errors)  # DRF's own message quotes the input...
    response = exception_handler(ValidationError(serializer.errors), {"request": request, "view": None})
    body = str(response.data)
    assert response.status_code == 400 and secret not in body  # ...the API's error body does not
    assert response.data["error"]["details"]["type"][0].code == "invalid_choice"
