"""Starting MCP servers: validation with the plain `mcp` SDK, and agent runs with fast-agent.

Every stdio server starts inside its own sandbox (agents_app.sandbox): its own PID namespace, so everything it
starts dies with it. The launcher process (bwrap, outside the sandbox) also carries MCPAGENT_PROCESS_TAG in its
environment, so whatever happens (timeouts, crashes) we can find and kill every sandbox of a validation or a
run afterwards: nothing outlives the task. fast_agent is imported lazily (about 1.3 s) and only where a run
needs it.
"""

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sys
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import psutil
from django.conf import settings

from agents_app import safety, sandbox
from agents_app.sandbox import prefetch
from agents_app.mcp_config import LaunchSpec
from mcpagent.metrics import SANDBOX_LIMIT_HITS
from mcpagent.redaction import Redactor

logger = logging.getLogger(__name__)
# The SDK logs a server's unparsable stdout lines verbatim, and those can hold secrets; failures are reported
# (redacted) by us instead.
logging.getLogger("mcp.client.stdio").setLevel(logging.CRITICAL)

PROCESS_TAG_ENV = "MCPAGENT_PROCESS_TAG"
STDERR_TAIL_CHARS = 2000
TOOL_TEXT_CHARS = 20_000
T = TypeVar("T")

# fast-agent keeps process-global settings and needs its own working directory: one run per process at
# a time (a Celery prefork child runs one task at a time anyway; this guards eager, threaded use).
_RUN_LOCK = threading.Lock()


# --- process bookkeeping ---------------------------------------------------------------------------


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
            writable=_host_folders(spec), only_hosts=spec.egress_hosts,
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


# --- validation ------------------------------------------------------------------------------------

@dataclass
class ServerCheck:
    server: str
    ok: bool
    seconds: float
    tools: list[dict] = field(default_factory=list)
    server_info: dict = field(default_factory=dict)
    error: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)



def validate_servers(specs: list[LaunchSpec], *, timeout: float | None = None) -> dict[str, ServerCheck]:
    """Start each server, initialize, list its tools, stop it; all servers in parallel, each bounded by
    `timeout` (AGENT_VALIDATION_TIMEOUT_SECONDS). Never raises for a server's failure: see .error."""
    timeout = timeout if timeout is not None else settings.AGENT_VALIDATION_TIMEOUT_SECONDS
    return run_sync(lambda: validate_servers_async(specs, timeout=timeout))


def task_redactor(specs: list[LaunchSpec]) -> Redactor:
    """Removes every secret of every server of the task (and the worker's own) from what servers send back, so
    one server's output cannot carry another's secret."""
    return Redactor(value for spec in specs for value in spec.secret_values)


async def validate_servers_async(specs: list[LaunchSpec], *, timeout: float) -> dict[str, ServerCheck]:
    results: dict[str, ServerCheck] = {}
    redact = task_redactor(specs)

    async def one(spec: LaunchSpec) -> None:
        results[spec.name] = await check_server(spec, timeout=timeout, redact=redact)

    async with anyio.create_task_group() as group:
        for spec in specs:
            group.start_soon(one, spec)
    return {spec.name: results[spec.name] for spec in specs}


async def check_server(spec: LaunchSpec, *, timeout: float, redact: Redactor) -> ServerCheck:
    started = time.monotonic()
    try:
        if spec.transport == "stdio":
            info, tools = await _check_stdio(spec, timeout, redact)
        else:
            info, tools = await _check_remote(spec, timeout, redact)
    except ServerFailure as failure:
        return ServerCheck(
            server=spec.name, ok=False, seconds=round(time.monotonic() - started, 3),
            error={"server": spec.name, "code": failure.code, "message": redact(failure.message),
                   "hint": failure.hint},
        )
    return ServerCheck(server=spec.name, ok=True, seconds=round(time.monotonic() - started, 3), tools=tools,
                       server_info=info)


async def _list(session: Any) -> tuple[dict, list[dict]]:
    init = await session.initialize()
    tools: list[dict] = []
    cursor = None
    while True:
        from mcp_types import PaginatedRequestParams

        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend({"name": t.name, "description": (t.description or "")[:500]} for t in page.tools)
        cursor = page.next_cursor
        if not cursor or len(tools) > 1000:
            break
    info = {"name": init.server_info.name, "version": init.server_info.version}
    return info, tools


async def _check_stdio(spec: LaunchSpec, timeout: float, redact: Redactor) -> tuple[dict, list[dict]]:
    tag = new_process_tag()
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as errlog:
        with sandbox_launch(spec, tag=tag) as launch:
            outcome, error, timed_out = await _list_stdio(launch, tag=tag, timeout=timeout, errlog=errlog,
                                                          polite_stop=spec.command != "docker")
            limit = launch.limit_hit()
        errlog.seek(0)
        stderr = errlog.read()[-20_000:]
    if outcome is not None:
        return outcome
    if limit:
        failure = limit_failure(spec, limit)
        raise ServerFailure(failure["code"], failure["message"], failure["hint"])
    raise _classify_stdio(spec, stderr=stderr, error=error, timed_out=timed_out, timeout=timeout, redact=redact)


async def _list_stdio(launch: sandbox.SandboxedLaunch, *, tag: str, timeout: float, errlog: Any,
                      polite_stop: bool) -> tuple[tuple[dict, list[dict]] | None, BaseException | None, bool]:
    """Start the server, initialize, list its tools, stop it: (info and tools, or None; the error; timed out)."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=launch.command, args=launch.args, env=launch.env, cwd=launch.cwd)
    timed_out = False
    outcome: tuple[dict, list[dict]] | None = None
    error: BaseException | None = None
    try:
        async with stdio_client(params, errlog=errlog) as (read, write):
            with anyio.move_on_after(timeout) as scope:
                try:
                    async with ClientSession(read, write, read_timeout_seconds=timeout) as session:
                        outcome = await _list(session)
                except Exception as exc:  # noqa: BLE001 -- classified with the server's stderr
                    error = exc
            if outcome is not None and polite_stop:
                # Validation is done; a polite stdin close costs the server's shutdown time (about 0.4 s for
                # mcp-server-time). docker is the exception: only a stdin close stops its container.
                kill_tagged(tag, wait=False, sig=signal.SIGTERM)
            if scope.cancelled_caught:
                timed_out = True
                # A hung server would get the SDK's 2 s + 2 s grace; nothing useful comes of waiting. No reaping
                # here: the event loop must see its child's exit itself.
                kill_tagged(tag, wait=False)
    except Exception as exc:  # noqa: BLE001 -- spawn errors (ENOENT, EACCES) and transport errors
        error = error or exc
    finally:
        kill_tagged(tag)
    return outcome, error, timed_out


_AUTH_RE = re.compile(
    r"\b401\b|\b403\b|unauthori[sz]ed|invalid[ _-]?(api[ _-]?)?(token|key|credential|auth)|bad credentials|"
    r"authentication (failed|error|required)|invalid_auth|not_authed|forbidden|token (is )?(expired|revoked)|"
    r"expired token|incorrect api key|access denied",
    re.IGNORECASE,
)
_MISSING_SETTING_RE = re.compile(
    r"(environment variable|env var)[^\n]{0,80}(required|not set|missing|must be set)|"
    r"(missing|required|not set)[^\n]{0,40}(environment variable|api[ _-]?key|token)|"
    r"\b([A-Z][A-Z0-9_]{2,})\b[^\n]{0,20}\b(is )?(not set|required|missing)",
)
_NO_MODULE_RE = re.compile(r"No module named '?([\w.]+)'?")
_NETWORK_RE = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|getaddrinfo|Temporary failure in name resolution|"
    r"Could not resolve host|Network is unreachable|Failed to fetch",
    re.IGNORECASE,
)
_PACKAGE_MISSING_RE = re.compile(
    r"E404|404 Not Found|is not in this registry|No solution found|not found in the package registry|"
    r"Unable to find image|pull access denied|manifest unknown|repository does not exist",
    re.IGNORECASE,
)


def _classify_stdio(spec: LaunchSpec, *, stderr: str, error: BaseException | None, timed_out: bool, redact: Redactor,
                    timeout: float) -> ServerFailure:
    label = spec.label
    tail = redact(stderr.strip())[-STDERR_TAIL_CHARS:]
    said = f" The server said: {_last_lines(tail)}" if tail else ""
    if timed_out:
        return ServerFailure(
            "server_timeout", f"{label} did not answer initialize within {timeout:g} s.{said}",
            "If it downloads its package on first start, retry (it is cached afterwards) or raise "
            "AGENT_VALIDATION_TIMEOUT_SECONDS; otherwise check that it is an MCP server speaking stdio.",
        )
    if isinstance(error, FileNotFoundError):
        return ServerFailure("command_not_found", f"{label}: `{spec.command}` is not installed on this server.",
                        _install_hint(spec.command))
    if isinstance(error, PermissionError):
        return ServerFailure("command_not_runnable", f"{label}: `{spec.command}` cannot be executed here.",
                        "Ask an operator to check the launcher's installation and permissions.")
    if _AUTH_RE.search(stderr):
        keys = ", ".join(spec.secret_keys) or "its credentials"
        return ServerFailure("credentials_rejected", f"{_service(label)} rejected the credentials.{said}",
                        f"Check {keys}: the value, that it has not expired or been revoked, and its scopes.")
    if "Cannot connect to the Docker daemon" in stderr:
        return ServerFailure("docker_unavailable", f"{label}: Docker is installed but its daemon is not running.{said}",
                        "Start the Docker daemon on the worker hosts, or pick a server that runs with npx/uvx.")
    module = _NO_MODULE_RE.search(stderr)
    if module:
        return ServerFailure("package_missing", f"{label}: the Python module `{module.group(1)}` is not installed.",
                        "Install it into the server's Python environment, or launch it with `uvx <package>`.")
    if _PACKAGE_MISSING_RE.search(stderr):
        return ServerFailure("package_missing", f"{label}: its package or image was not found.{said}",
                        "Check the package name and version in the launch command.")
    if _NETWORK_RE.search(stderr):
        return ServerFailure("network_error", f"{label} could not reach the network.{said}",
                        "Check that the worker can reach the package registry and the service's API.")
    missing = _MISSING_SETTING_RE.search(stderr)
    if missing:
        return ServerFailure("setting_missing", f"{label} is missing a required setting.{said}",
                        "Provide the setting it names (as an env value) and retry.")
    detail = said or (f" ({_exception_text(error)})" if error else "")
    return ServerFailure("server_exited", f"{label} stopped before answering initialize.{detail}",
                    "Run the same command locally to see its error; check its arguments and settings.")


async def _check_remote(spec: LaunchSpec, timeout: float, redact: Redactor) -> tuple[dict, list[dict]]:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    await _check_remote_address(spec)
    # The SDK turns HTTP errors into generic JSON-RPC errors; keep the statuses to say what happened.
    statuses: list[int] = []

    async def record(response: Any) -> None:
        statuses.append(response.status_code)

    def client_factory(**kwargs: Any) -> Any:
        client = create_mcp_http_client(**kwargs)
        client.event_hooks = {"request": [], "response": [record]}
        return client

    try:
        with anyio.fail_after(timeout):
            if spec.transport == "sse":
                transport = sse_client(spec.url, headers=spec.headers, timeout=timeout, sse_read_timeout=timeout,
                                       httpx_client_factory=client_factory)
                async with transport as (read, write):
                    async with ClientSession(read, write, read_timeout_seconds=timeout) as session:
                        return await _list(session)
            async with client_factory(headers=spec.headers, timeout=httpx2.Timeout(timeout)) as http:
                async with streamable_http_client(spec.url, http_client=http) as (read, write):
                    async with ClientSession(read, write, read_timeout_seconds=timeout) as session:
                        return await _list(session)
    except TimeoutError:
        raise ServerFailure(
            "server_timeout", f"{spec.label} did not answer initialize within {timeout:g} s.",
            "Check the URL and that the service is up; raise AGENT_VALIDATION_TIMEOUT_SECONDS if it is slow.",
        ) from None
    except Exception as exc:  # noqa: BLE001 -- classified for the user
        errors = [code for code in statuses if code >= 400]
        raise _classify_remote(spec, exc, status=errors[0] if errors else None, redact=redact) from None


def _classify_remote(spec: LaunchSpec, exc: BaseException, *, status: int | None, redact: Redactor) -> ServerFailure:
    leaves = _leaf_exceptions(exc)
    text = " ".join(_exception_text(e) for e in leaves)
    if status in (401, 403) or _AUTH_RE.search(text):
        keys = ", ".join(spec.secret_keys) or "an Authorization header"
        return ServerFailure("credentials_rejected",
                        f"{_service(spec.label)} rejected the credentials (HTTP {status or 401}).",
                        f"Check {keys}: the value, that it has not expired or been revoked, and its scopes.")
    if status in (404, 405):
        return ServerFailure("not_an_mcp_endpoint", f"{spec.label}: {spec.url} answered HTTP {status}.",
                        "Check the URL: it must be the server's MCP endpoint (often ending in /mcp or /sse).")
    if any(type(e).__name__ in ("ConnectError", "ConnectTimeout") for e in leaves) or _NETWORK_RE.search(text):
        return ServerFailure("unreachable", f"{spec.label}: could not connect to {urlsplit(spec.url).netloc}.",
                        "Check the URL and that the service is reachable from our servers.")
    return ServerFailure("server_error", f"{spec.label} failed during initialize: {redact(text)[:300]}",
                    "Check the URL, the transport (http or sse) and the credentials.")


async def _check_remote_address(spec: LaunchSpec) -> None:
    """Refuse hosts that resolve to private/loopback/link-local addresses (unless loopback is allowed):
    a user URL must not reach our internal network."""
    host = urlsplit(spec.url).hostname or ""
    allow_loopback = settings.DEBUG or settings.AGENT_ALLOW_HTTP_LOOPBACK
    try:
        infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise ServerFailure("unreachable", f"{spec.label}: the host {host} could not be resolved.",
                       "Check the URL's host name.") from None
    import ipaddress

    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address.is_loopback and allow_loopback:
            continue
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            raise ServerFailure("address_not_allowed", f"{spec.label}: {host} resolves to an internal address.",
                           "Remote MCP servers must be on the public internet.")


def _install_hint(command: str) -> str:
    hints = {
        "npx": "Install Node.js (it provides npx) on the worker hosts, e.g. `apt-get install nodejs npm`.",
        "node": "Install Node.js on the worker hosts, e.g. `apt-get install nodejs`.",
        "uvx": "Install uv on the worker hosts (`pip install uv` or https://docs.astral.sh/uv/), which provides uvx.",
        "docker": "Install Docker on the worker hosts, or pick a server that runs with npx/uvx.",
    }
    return hints.get(command, f"Install `{command}` on the worker hosts, or remove this server from the agent.")


def _service(label: str) -> str:
    known = {"github": "GitHub", "gitlab": "GitLab", "openai": "OpenAI", "slack": "Slack", "notion": "Notion"}
    return known.get(label.lower(), label)


def _last_lines(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())[:600]


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


# --- runs with fast-agent --------------------------------------------------------------------------

@dataclass
class RunOutcome:
    ok: bool
    reply: str = ""
    # In order: {"role": "tool"|"assistant", "message": str, "metadata": {...}}
    turns: list[dict] = field(default_factory=list)
    error: dict | None = None
    seconds: float = 0.0
    leftover_processes: int = 0
    # {server name: the sandbox limit it ran into}
    limits: dict[str, str] = field(default_factory=dict)


def run_agent(*, specs: list[LaunchSpec], instruction: str, model: str, message: str,
              history: list[dict] | None = None, playback: list[dict] | None = None,
              startup_timeout: float | None = None, tool_timeout: int | None = None,
              run_timeout: float | None = None, watch: Callable[[Any, Redactor], None] | None = None) -> RunOutcome:
    """Run one user message through a fast-agent agent attached to `specs`. Never raises for agent
    failures (including fast-agent's SystemExit on start-up errors): see RunOutcome.error. The whole run is
    bounded by `run_timeout` (AGENT_RUN_TIMEOUT_SECONDS) here, so also without a Celery worker's time limit.
    `watch(agent, redact)` is called with the fast-agent agent before the message is sent (agents_app.run_events)."""
    startup_timeout = startup_timeout or settings.AGENT_VALIDATION_TIMEOUT_SECONDS
    tool_timeout = tool_timeout or settings.AGENT_TOOL_TIMEOUT_SECONDS
    run_timeout = run_timeout or settings.AGENT_RUN_TIMEOUT_SECONDS
    tag = new_process_tag()
    started = time.monotonic()
    with _RUN_LOCK:
        workdir = tempfile.mkdtemp(prefix="mcpagent-run-")
        previous_cwd = os.getcwd()
        try:
            # fast-agent reads ./fastagent.config.yaml and ./.env: run from an empty private directory.
            os.chdir(workdir)
            outcome = run_sync(lambda: asyncio.wait_for(_run_async(
                specs=specs, instruction=instruction, model=model, message=message, history=history or [],
                playback=playback, startup_timeout=startup_timeout, tool_timeout=tool_timeout, tag=tag,
                workdir=workdir, watch=watch,
            ), timeout=run_timeout))
        except TimeoutError:
            outcome = RunOutcome(ok=False, error={
                "server": None, "code": "run_timeout",
                "message": f"The run took longer than {run_timeout:g} s and was stopped.",
                "hint": "Try a shorter request, or raise AGENT_RUN_TIMEOUT_SECONDS.",
            })
        except SystemExit as exc:
            outcome = RunOutcome(ok=False, error=_run_error(task_redactor(specs),
                                                            exc.__cause__ or exc.__context__ or exc))
        finally:
            os.chdir(previous_cwd)
            leftover = kill_tagged(tag)
            shutil.rmtree(workdir, ignore_errors=True)
    outcome.leftover_processes = leftover
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome


def _write_config(workdir: str, model: str) -> str:
    config: dict[str, Any] = {
        "default_model": model,
        "logger": {"progress_display": False, "show_chat": False, "show_tools": False, "level": "error"},
    }
    anthropic: dict[str, str] = {}
    if settings.ANTHROPIC_API_KEY:
        anthropic["api_key"] = settings.ANTHROPIC_API_KEY
    if settings.ANTHROPIC_BASE_URL:
        anthropic["base_url"] = settings.ANTHROPIC_BASE_URL
    if anthropic:
        config["anthropic"] = anthropic
    openai: dict[str, str] = {}
    if settings.OPENAI_API_KEY:
        openai["api_key"] = settings.OPENAI_API_KEY
    if settings.OPENAI_BASE_URL:
        openai["base_url"] = settings.OPENAI_BASE_URL
    if openai:
        config["openai"] = openai
    path = os.path.join(workdir, "fastagent.config.yaml")
    # The file may hold the API key: private to us, removed with the directory after the run.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle)  # JSON is YAML, and needs no escaping rules of our own
    return path


async def _run_async(*, specs: list[LaunchSpec], instruction: str, model: str, message: str, history: list[dict],
                     playback: list[dict] | None, startup_timeout: float, tool_timeout: int, tag: str,
                     workdir: str, watch: Callable[[Any, Redactor], None] | None = None) -> RunOutcome:
    for spec in specs:
        if spec.transport != "stdio":
            try:
                # Again at each run: a host's DNS may have changed since validation.
                await _check_remote_address(spec)
            except ServerFailure as failure:
                return RunOutcome(ok=False, error={"server": spec.name, "code": failure.code,
                                                   "message": failure.message, "hint": failure.hint})
    with ExitStack() as launches:
        started: dict[str, sandbox.SandboxedLaunch] = {}
        for spec in specs:
            if spec.transport == "stdio":
                try:
                    started[spec.name] = launches.enter_context(sandbox_launch(spec, tag=tag))
                except ServerFailure as failure:
                    return RunOutcome(ok=False, error={"server": spec.name, "code": failure.code,
                                                       "message": failure.message, "hint": failure.hint})
        outcome = await _run_fast_agent(
            specs=specs, launches=started, redact=task_redactor(specs), instruction=instruction, model=model,
            message=message, history=history,
            playback=playback, startup_timeout=startup_timeout, tool_timeout=tool_timeout, workdir=workdir,
            watch=watch)
        kill_tagged(tag, wait=False)
        limits = {name: hit for name, launch in started.items() if (hit := launch.limit_hit())}
    if limits:
        # A limit explains the failure better than what the server or the model said about it.
        spec = next(s for s in specs if s.name in limits)
        outcome.limits = limits
        if not outcome.ok or any(t["metadata"].get("is_error") for t in outcome.turns):
            outcome.ok, outcome.error = False, limit_failure(spec, limits[spec.name])
    return outcome


async def _run_fast_agent(*, specs: list[LaunchSpec], launches: dict[str, sandbox.SandboxedLaunch], redact: Redactor,
                          instruction: str,
                          model: str, message: str, history: list[dict], playback: list[dict] | None,
                          startup_timeout: float, tool_timeout: int, workdir: str,
                          watch: Callable[[Any, Redactor], None] | None = None) -> RunOutcome:
    from fast_agent import FastAgent
    from fast_agent.config import MCPServerSettings
    from fast_agent.mcp.mcp_aggregator import MCPAttachOptions

    config_path = _write_config(workdir, model)
    fast = FastAgent("mcpagent", config_path=config_path, parse_cli_args=False, quiet=True, no_home=True,
                     isolated=True)
    fast.agent(name="agent", instruction=instruction or "You are a helpful agent.", model=model)(lambda: None)
    try:
        async with fast.run() as app:
            agent = app["agent"]
            for spec in specs:
                try:
                    server = _server_settings(MCPServerSettings, spec, launch=launches.get(spec.name),
                                              tool_timeout=tool_timeout)
                    await agent.attach_mcp_server(
                        server_name=spec.name, server_config=server,
                        options=MCPAttachOptions(startup_timeout_seconds=startup_timeout),
                    )
                except Exception as exc:  # noqa: BLE001 -- reported per server
                    message = f"{spec.label} could not be started for this run: {_exception_text(exc)}"
                    return RunOutcome(ok=False, error={
                        "server": spec.name, "code": "server_start_failed", "message": redact(message)[:800],
                        "hint": "Check the server (GET /api/agents/{id}); create the agent again if its "
                                "credentials changed.",
                    })
            if watch is not None:
                watch(agent, redact)
            if playback:
                await agent.generate(_playback_messages(playback))
            elif history:
                agent.load_message_history(_history_messages(history))
            start = len(agent.message_history)
            try:
                reply = await agent.send(message)
            except Exception as exc:  # noqa: BLE001 -- model/provider errors end the run, not the worker
                return RunOutcome(ok=False, turns=_turns(agent.message_history[start:], redact),
                                  error=_run_error(redact, exc))
            return RunOutcome(ok=True, reply=redact(reply), turns=_turns(agent.message_history[start:], redact))
    except SystemExit as exc:
        return RunOutcome(ok=False, error=_run_error(redact, exc.__cause__ or exc.__context__ or exc))


def _server_settings(settings_cls: type, spec: LaunchSpec, *, launch: sandbox.SandboxedLaunch | None,
                     tool_timeout: int) -> Any:
    if launch is not None:
        return settings_cls(name=spec.name, transport="stdio", command=launch.command, args=launch.args,
                            env=launch.env, cwd=launch.cwd, read_timeout_seconds=tool_timeout,
                            reconnect_on_disconnect=False)
    return settings_cls(name=spec.name, transport=spec.transport, url=spec.url, headers=spec.headers or None,
                        read_timeout_seconds=tool_timeout, reconnect_on_disconnect=False)


def _run_error(redact: Redactor, exc: BaseException) -> dict:
    text = redact(_exception_text(exc))
    hint = "Check the agent's model and the model provider's API key/base URL settings."
    if "api key" in text.lower() or "api_key" in text.lower():
        hint = "Set ANTHROPIC_API_KEY (or use the passthrough/playback models)."
    return {"server": None, "code": "run_failed", "message": f"The agent run failed: {text[:800]}", "hint": hint}


def _playback_messages(script: list[dict]) -> list[Any]:
    """Our stored playback script -> fast-agent messages. Assistant steps may carry tool calls, which the
    agent really executes."""
    from fast_agent.mcp.prompt import Prompt
    from fast_agent.types.llm_stop_reason import LlmStopReason
    from mcp import CallToolRequest
    from mcp_types import CallToolRequestParams

    messages = []
    for index, step in enumerate(script):
        if step.get("role") == "user":
            messages.append(Prompt.user(step.get("text", "")))
            continue
        calls = {
            f"playback-{index}-{n}": CallToolRequest(method="tools/call", params=CallToolRequestParams(
                name=call["name"], arguments=call.get("arguments") or {}))
            for n, call in enumerate(step.get("tool_calls") or [])
        }
        if calls:
            messages.append(Prompt.assistant(step.get("text", ""), tool_calls=calls,
                                             stop_reason=LlmStopReason.TOOL_USE))
        else:
            messages.append(Prompt.assistant(step.get("text", "")))
    return messages


def _history_messages(history: list[dict]) -> list[Any]:
    from fast_agent.mcp.prompt import Prompt

    return [Prompt.user(t["text"]) if t["role"] == "user" else Prompt.assistant(t["text"]) for t in history]


def _turns(messages: list[Any], redact: Redactor) -> list[dict]:
    """fast-agent history after our user message -> tool calls, tool results and assistant replies."""
    turns: list[dict] = []
    names: dict[str, str] = {}
    for msg in messages:
        if msg.role == "assistant":
            text = redact(msg.all_text() if hasattr(msg, "all_text") else msg.first_text())
            for call_id, call in (msg.tool_calls or {}).items():
                tool = call.params.name
                names[call_id] = tool
                server, _, short = tool.rpartition("__")
                arguments = redact.redact_data(call.params.arguments or {})
                call_text = f"call {tool} {json.dumps(arguments, ensure_ascii=False)}"
                turns.append({"role": "tool", "message": call_text[:TOOL_TEXT_CHARS],
                              "metadata": {"kind": "tool_call", "call_id": call_id, "tool": short or tool,
                                           "server": server or None, "arguments": arguments,
                                           "assistant_text": text[:2000] if msg.tool_calls else ""}})
            if not msg.tool_calls:
                turns.append({"role": "assistant", "message": text, "metadata": {}})
        elif msg.tool_results:
            for call_id, result in msg.tool_results.items():
                parts = [getattr(c, "text", "") for c in (result.content or []) if getattr(c, "type", "") == "text"]
                text = redact("\n".join(parts))
                tool = names.get(call_id, "")
                turns.append({"role": "tool", "message": text[:TOOL_TEXT_CHARS],
                              "metadata": {"kind": "tool_result", "call_id": call_id, "tool": tool.rpartition("__")[2],
                                           "is_error": bool(getattr(result, "is_error", False)),
                                           "truncated": len(text) > TOOL_TEXT_CHARS}})
    return turns
