"""Configuration from the environment: `<NAME>_FILE` variants, and the process's own secrets leaving os.environ."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from mcpagent.env import PROCESS_SECRETS, env_int, env_str, environ_for_own_process

ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_file_variant_gives_the_value_without_its_final_newline(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("from-a-file\n")
    (tmp_path / "count").write_text("7")
    monkeypatch.delenv("SOME_KNOB", raising=False)
    monkeypatch.setenv("SOME_KNOB_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("SOME_COUNT_FILE", str(tmp_path / "count"))
    assert env_str("SOME_KNOB") == "from-a-file"
    assert env_int("SOME_COUNT", 1) == 7


def test_a_file_variant_and_the_variable_together_are_refused(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("x")
    monkeypatch.setenv("SOME_KNOB", "y")
    monkeypatch.setenv("SOME_KNOB_FILE", str(tmp_path / "key"))
    with pytest.raises(ImproperlyConfigured, match="SOME_KNOB or SOME_KNOB_FILE"):
        env_str("SOME_KNOB")


def test_an_unreadable_file_variant_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_KNOB_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="SOME_KNOB_FILE: cannot read"):
        env_str("SOME_KNOB")


def test_settings_leave_no_secret_in_this_process_environment():
    from django.conf import settings

    assert settings.configured
    assert not [name for name in PROCESS_SECRETS if name in os.environ]


# Run in a fresh interpreter: settings are read once per process.
_CHILD = """
import json, os, subprocess, sys
import django
django.setup()
from django.conf import settings
from mcpagent.env import environ_for_own_process
grandchild = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                            capture_output=True, text=True, check=True)
print(json.dumps({
    "environ": sorted(os.environ),
    "grandchild": sorted(json.loads(grandchild.stdout)),
    "own_process": {name: environ_for_own_process().get(name) for name in sys.argv[1:]},
    "settings": {name: getattr(settings, name) for name in ("SECRET_KEY", "ANTHROPIC_API_KEY", "DATABASE_URL")},
}))
"""


def test_secrets_are_not_inherited_by_processes_started_after_setup(tmp_path):
    secrets = {
        "SECRET_KEY": "s" * 50, "ENCRYPTION_KEY": "e" * 44, "ENCRYPTION_KEY_FALLBACKS": "f" * 44,
        "OPENAI_API_KEY": "sk-test", "MCPAGENT_DB_PASSWORD": "pw", "SENTRY_DSN": "https://k@sentry.example/1",
        # Parsed, never connected to: django.setup() opens no connection.
        "DATABASE_URL": "postgres://user:pw@127.0.0.1:1/nothing",
    }
    (tmp_path / "anthropic").write_text("sk-ant-from-file\n")
    env = {name: value for name, value in environ_for_own_process().items() if name not in PROCESS_SECRETS}
    env.update(secrets, ANTHROPIC_API_KEY_FILE=str(tmp_path / "anthropic"), DJANGO_SETTINGS_MODULE="mcpagent.settings")
    done = subprocess.run([sys.executable, "-c", _CHILD, *secrets], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert not set(PROCESS_SECRETS) & set(seen["environ"])
    assert not set(PROCESS_SECRETS) & set(seen["grandchild"])
    assert seen["settings"] == {"SECRET_KEY": "s" * 50, "ANTHROPIC_API_KEY": "sk-ant-from-file",
                                "DATABASE_URL": secrets["DATABASE_URL"]}
    # Our own processes (gunicorn, a worker) are handed them back explicitly.
    assert seen["own_process"] == secrets
