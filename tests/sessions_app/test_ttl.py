"""The purge beat task: expired (and orphaned) credentials and files are deleted and the audit says so; nothing
else is touched. Also on a real worker: task arguments, results and worker logs carry no value."""

import base64
import json
from datetime import timedelta

import pytest
import redis
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.utils import timezone

from sessions_app.credentials import credentials_extend_ttl, credentials_store, files_store
from mcpagent.vault.models import AuditEvent, Credential, StoredFile
from sessions_app.models import Session
from sessions_app.tasks import purge_expired_credentials
from tests.sessions_app.secretscan import fake_secrets


def _store(api, session, values, agent=None):
    credentials_store(client=api.client_obj, session=session, agent=agent, server="svc", values=values,
                      actor=api.client_obj, reason="test")


def _file(api, session, content: bytes, key: str):
    files_store(client=api.client_obj, session=session, actor=api.client_obj, reason="test",
                files=[{"filename": f"{key.lower()}.env", "content": base64.b64encode(content).decode(), "key": key}])


def test_beat_schedule_registers_the_purge():
    entry = django_settings.CELERY_BEAT_SCHEDULE["purge-expired-credentials"]
    assert entry["task"] == "sessions_app.tasks.purge_expired_credentials"
    assert entry["schedule"] == 300.0
    assert purge_expired_credentials.name == entry["task"]


def test_expired_values_are_purged_and_audited_unexpired_remain(api, session_x, agent_x):
    _store(api, session_x, {"OLD_TOKEN": "old-value-1234", "FRESH_TOKEN": "fresh-value-1234"})
    _file(api, session_x, b"OLD=1\n", "OLD_FILE")
    _file(api, session_x, b"FRESH=1\n", "FRESH_FILE")
    past = timezone.now() - timedelta(minutes=1)
    Credential.objects.filter(key="OLD_TOKEN").update(expires_at=past)
    StoredFile.objects.filter(key="OLD_FILE").update(expires_at=past)
    old_ids = {str(Credential.objects.defer("value").get(key="OLD_TOKEN").pk),
               str(StoredFile.objects.defer("content").get(key="OLD_FILE").pk)}
    # Agent-held values with the agent's lifetime never expire by time.
    _store(api, session_x, {"AGENT_TOKEN": "agent-value-1234"}, agent=agent_x)
    assert Credential.objects.get(key="AGENT_TOKEN").expires_at is None

    result = purge_expired_credentials.apply().get()
    assert result == {"credentials": 1, "files": 1}
    assert set(Credential.objects.values_list("key", flat=True)) == {"FRESH_TOKEN", "AGENT_TOKEN"}
    assert set(StoredFile.objects.values_list("key", flat=True)) == {"FRESH_FILE"}
    events = AuditEvent.objects.filter(action="expire")
    assert {e.object_id for e in events} == old_ids
    for event in events:
        assert (event.actor_type, event.actor_label, event.reason) == ("system", "purge_expired_credentials", "ttl")
        assert event.session_id == session_x.pk and event.client_id == api.client_obj.pk
    assert {(e.object_type, e.key) for e in events} == {("credential", "OLD_TOKEN"), ("file", "OLD_FILE")}
    # Nothing left to do: a second run deletes and records nothing.
    assert purge_expired_credentials.apply().get() == {"credentials": 0, "files": 0}
    assert AuditEvent.objects.filter(action="expire").count() == 2


def test_values_whose_owners_are_gone_are_purged_as_orphaned(api, agent_x):
    session = Session.objects.create(client=api.client_obj)
    _store(api, session, {"SESSION_TOKEN": "session-value-1234"})
    _file(api, session, b"X=1\n", "SESSION_FILE")
    session_id = session.pk
    session.delete()  # bypassing the service: the vault's row still names the session, the value is not yet gone
    assert Credential.objects.filter(references__session_id=session_id, references__agent_id__isnull=True).count() == 1
    assert purge_expired_credentials.apply().get() == {"credentials": 1, "files": 1}
    assert not Credential.objects.exists() and not StoredFile.objects.exists()
    assert set(AuditEvent.objects.filter(action="expire").values_list("reason", flat=True)) == {"orphaned"}


def test_ttl_clock_is_the_setting(api, session_x, agent_x, settings):
    settings.CREDENTIAL_TTL_HOURS = 0.0001  # 0.36 s
    _store(api, session_x, {"SHORT_TOKEN": "short-value-1234"})
    Credential.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert purge_expired_credentials.apply().get()["credentials"] == 1
    # Adopted by an agent, a value is not purged by the session TTL.
    settings.CREDENTIAL_TTL_HOURS = 24
    _store(api, session_x, {"ADOPTED_TOKEN": "adopted-value-1234"})
    credentials_extend_ttl(client=api.client_obj, session=session_x, agent=agent_x, actor="test", reason="t")
    assert purge_expired_credentials.apply().get() == {"credentials": 0, "files": 0}


@pytest.mark.worker
def test_on_a_real_worker_no_value_in_task_messages_results_or_logs(api, celery_worker, redis_url):
    values = fake_secrets()
    session = Session.objects.create(client=api.client_obj)
    _store(api, session, values)
    Credential.objects.filter(key__in=["SLACK_BOT_TOKEN", "OPENAI_API_KEY"]).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    published = []

    def record(sender=None, body=None, headers=None, **kwargs):
        published.append(json.dumps([sender, body, headers], default=str))

    before_task_publish.connect(record)
    try:
        result = purge_expired_credentials.delay()
        assert result.get(timeout=30) == {"credentials": 2, "files": 0}
    finally:
        before_task_publish.disconnect(record)
    assert published and all(
        value not in message for message in published for value in values.values()
    )
    stored_results = [
        redis.Redis.from_url(redis_url).get(key) or b"" for key in redis.Redis.from_url(redis_url).keys("celery-task-meta-*")
    ]
    assert any(b"credentials" in blob for blob in stored_results)
    assert not any(value.encode() in blob for blob in stored_results for value in values.values())
    log = celery_worker.log_path.read_text()
    assert "purge_expired_credentials" in log
    assert not any(value in log for value in values.values())
    assert AuditEvent.objects.filter(action="expire", reason="ttl").count() == 2
