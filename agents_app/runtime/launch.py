"""Starting a stdio MCP server in its sandbox, and the bookkeeping that makes sure nothing outlives its task.

Every stdio server starts inside its own sandbox (agents_app.sandbox): its own PID namespace, so everything it
starts dies with it. The launcher process (bwrap, outside the sandbox) also carries MCPAGENT_PROCESS_TAG in its
environment, so whatever happens (timeouts, crashes) we can find and kill every sandbox of a validation or a
run afterwards.
"""

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psutil
from django.conf import settings

from agents_app import safety, sandbox
from agents_app.mcp_config import LaunchSpec
from agents_app.sandbox import prefetch
from mcpagent.metrics import SANDBOX_LIMIT_HITS
from mcpagent.redaction import Redactor

logger = logging.getLogger(__name__)

PROCESS_TAG_ENV = "MCPAGENT_PROCESS_TAG"
T = TypeVar("T")

# fast-agent keeps process-global settings and needs its own working directory: one run per process at
# a time (a Celery prefork child runs one task at a time anyway; this guards eager, threaded use).
_RUN_LOCK = threading.Lock()

class ServerFailure(Exception):
    """A server could not be started or did not answer: a code, what happened, and what to do."""

    def __init__(self, code: str, message: str, hint: str):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


@contextmanager
def sandbox_launch(spec: LaunchSpec, *, tag: str) -> Iterator[sandbox.SandboxedLaunch]:
    """How to start a stdio server in its sandbox, for the block (see agents_app.sandbox): its files mounted
    read-only, the host folders its arguments name writable, its network narrowed to the catalogue's hosts."""
    if spec.command == "docker" and sandbox.enabled():
        raise ServerFailure("sandbox_unsupported", f"{spec.label}: Docker images cannot run in the sandbox MCP "
                            "servers run in (bubblewrap has no Docker engine).",
                            "Use the server's npm or PyPI package, or a remote URL, instead of its Docker image.")
    executable = safety.resolve_command(spec.command)
    if executable is None:
        raise ServerFailure("command_not_found", f"{spec.label}: `{spec.command}` is not installed on this server.",
                             _install_hint(spec.command))
    env = {**spec.env, PROCESS_TAG_ENV: tag}
    workdir = None if sandbox.enabled() else tempfile.mkdtemp(prefix="mcpagent-srv-")
    try:
        with sandbox.sandboxed(
            server=spec.label, executable=executable, args=spec.args, env=env, cwd=workdir,
            readonly=[*settings.AGENT_ALLOWED_SCRIPT_DIRS, *spec.file_paths],
            writable=_host_folders(spec), only_hosts=spec.egress_hosts, proxy_env=spec.proxy_env,
            prefetched=prefetch.is_prefetched(spec.command, spec.args),
        ) as launch:
            yield launch
    except sandbox.SandboxUnavailable as exc:
        raise ServerFailure("sandbox_unavailable", f"{spec.label} could not be started: the sandbox is "
                             f"unavailable ({exc}).", "Ask an operator to check SANDBOX and bubblewrap "
                             "(GET /api/health shows the sandbox's state).") from None
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _host_folders(spec: LaunchSpec) -> list[str]:
    """The host paths the server's arguments and settings name that lie in AGENT_ALLOWED_PATH_DIRS (checked again
    here, not only when the config was stored: the setting may have changed since); its own files are apart."""
    roots = [Path(d).resolve() for d in settings.AGENT_ALLOWED_PATH_DIRS]
    named = safety.path_arguments([*spec.args, *spec.env.values()])
    return [path for path in named if path not in spec.file_paths and os.path.exists(path)
            and any(Path(path).resolve().is_relative_to(root) for root in roots)]


def limit_failure(spec: LaunchSpec, limit: str) -> dict:
    """The stored error of a server stopped (or refused resources) by one of its sandbox's limits."""
    SANDBOX_LIMIT_HITS.labels(limit=limit.split(" (")[0]).inc()
    return {"server": spec.name, "code": "sandbox_limit",
            "message": f"{spec.label} exceeded its sandbox limit on {limit} and was stopped.",
            "hint": "Ask an operator to raise the limit if the server needs more, or use another server."}

def new_process_tag() -> str:
    # Prefixed with our pid, so a process (or a test) can find exactly the servers it started.
    return f"{os.getpid()}-{uuid.uuid4().hex}"


def process_tag_prefix(pid: int | None = None) -> str:
    return f"{pid or os.getpid()}-"


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Live processes whose environment carries this tag (or a tag starting with it)."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            value = proc.environ().get(PROCESS_TAG_ENV, "")
            if value and value.startswith(tag) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def kill_tagged(tag: str, *, wait: bool = True, sig: int = signal.SIGKILL) -> int:
    """Signal (SIGKILL) every process carrying the tag; returns how many were still alive. `wait` reaps them
    too, which must not happen while an event loop still watches one of them as its child."""
    procs = tagged_processes(tag)
    for proc in procs:
        try:
            proc.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    if procs and wait:
        psutil.wait_procs(procs, timeout=3)
        logger.info("killed %d leftover MCP server process(es) for tag %s", len(procs), tag[:16])
    return len(procs)


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code (views, Celery tasks, commands), also when this thread has a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="mcpagent-runtime")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def task_redactor(specs: list[LaunchSpec]) -> Redactor:
    """Removes every secret of every server of the task (and the worker's own) from what servers send back, so
    one server's output cannot carry another's secret."""
    return Redactor(value for spec in specs for value in spec.secret_values)


def _install_hint(command: str) -> str:
    hints = {
        "npx": "Install Node.js (it provides npx) on the worker hosts, e.g. `apt-get install nodejs npm`.",
        "node": "Install Node.js on the worker hosts, e.g. `apt-get install nodejs`.",
        "uvx": "Install uv on the worker hosts (`pip install uv` or https://docs.astral.sh/uv/), which provides uvx.",
        "docker": "Install Docker on the worker hosts, or pick a server that runs with npx/uvx.",
    }
    return hints.get(command, f"Install `{command}` on the worker hosts, or remove this server from the agent.")


def _leaf_exceptions(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaf_exceptions(sub)]
    chain = [exc]
    if exc.__cause__ is not None and exc.__cause__ not in chain:
        chain.extend(_leaf_exceptions(exc.__cause__))
    return chain


def _exception_text(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return "; ".join(f"{type(e).__name__}: {e}"[:300] for e in _leaf_exceptions(exc))

