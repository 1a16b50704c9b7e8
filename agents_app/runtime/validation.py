"""Validating MCP servers with the plain `mcp` SDK: start each one (in its sandbox), initialize, list its tools,
stop it; a failure is classified into a code, a message and what to do."""

import ipaddress
import json
import logging
import re
import signal
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from django.conf import settings
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import PaginatedRequestParams

from agents_app import sandbox
from agents_app.mcp_config import LaunchSpec
from agents_app.runtime.launch import (ServerFailure, _exception_text, _install_hint, _leaf_exceptions, kill_tagged,
                                       limit_failure, new_process_tag, run_sync, sandbox_launch, task_redactor)
from agents_app.sandbox.egress import REFUSED_REASON
from mcpagent.redaction import Redactor

logger = logging.getLogger(__name__)
# The SDK logs a server's unparsable stdout lines verbatim, and those can hold secrets; failures are reported
# (redacted) by us instead.
logging.getLogger("mcp.client.stdio").setLevel(logging.CRITICAL)

STDERR_TAIL_CHARS = 2000

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
_EGRESS_REFUSED_RE = re.compile(re.escape(REFUSED_REASON) + r": ([^\"\n\\]{1,200})")
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
    redacted = redact(stderr)

    def said_for(pattern: re.Pattern) -> str:
        return f" The server said: {_evidence(redacted, pattern)}" if tail else ""

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
    refused = _EGRESS_REFUSED_RE.search(redacted)
    if refused:  # before the credentials: a server that cannot reach its service often says it could not sign in
        return ServerFailure(
            "network_error", f"{label} could not reach its service: the sandbox refused the connection "
            f"({refused.group(1).strip()}).",
            "If the service is on a private network or its name does not resolve from the workers, an operator "
            "can allow it (SANDBOX_NETWORK_ALLOW_HOSTS) or route it (SANDBOX_NETWORK_CONNECT_TO).")
    if _AUTH_RE.search(stderr):
        keys = ", ".join(spec.secret_keys) or "its credentials"
        return ServerFailure("credentials_rejected", f"{_service(label)} rejected the credentials.{said_for(_AUTH_RE)}",
                        f"Check {keys}: the value, that it has not expired or been revoked, and its scopes.")
    if "Cannot connect to the Docker daemon" in stderr:
        return ServerFailure("docker_unavailable", f"{label}: Docker is installed but its daemon is not running.{said}",
                        "Start the Docker daemon on the worker hosts, or pick a server that runs with npx/uvx.")
    module = _NO_MODULE_RE.search(stderr)
    if module:
        return ServerFailure("package_missing", f"{label}: the Python module `{module.group(1)}` is not installed.",
                        "Install it into the server's Python environment, or launch it with `uvx <package>`.")
    if _PACKAGE_MISSING_RE.search(stderr):
        return ServerFailure("package_missing",
                             f"{label}: its package or image was not found.{said_for(_PACKAGE_MISSING_RE)}",
                        "Check the package name and version in the launch command.")
    if _NETWORK_RE.search(stderr):
        return ServerFailure("network_error", f"{label} could not reach the network.{said_for(_NETWORK_RE)}",
                        "Check that the worker can reach the package registry and the service's API.")
    missing = _MISSING_SETTING_RE.search(stderr)
    if missing:
        return ServerFailure("setting_missing",
                             f"{label} is missing a required setting.{said_for(_MISSING_SETTING_RE)}",
                        "Provide the setting it names (as an env value) and retry.")
    detail = said or (f" ({_exception_text(error)})" if error else "")
    return ServerFailure("server_exited", f"{label} stopped before answering initialize.{detail}",
                    "Run the same command locally to see its error; check its arguments and settings.")


async def _check_remote(spec: LaunchSpec, timeout: float, redact: Redactor) -> tuple[dict, list[dict]]:
    await _check_remote_address(spec)
    # The SDK turns HTTP errors into generic JSON-RPC errors; keep the statuses to say what happened.
    statuses: list[int] = []
    challenges: list[str] = []

    async def record(response: Any) -> None:
        statuses.append(response.status_code)
        if response.status_code == 401:
            challenges.append(response.headers.get("www-authenticate", ""))

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
        raise _classify_remote(spec, exc, status=errors[0] if errors else None, redact=redact,
                               challenge=challenges[0] if challenges else "") from None


def authorization_required(spec: LaunchSpec, *, status: int | None, challenge: str) -> bool:
    """A 401 with a Bearer challenge (MCP authorization) from a server the user gave no Authorization header of
    their own: the end user must authorize us (a token they pasted that is refused is credentials_rejected)."""
    own_header = any(k.lower() == "authorization" for k in spec.headers) and not spec.vault_bearer
    return status == 401 and challenge.strip().lower().startswith("bearer") and not own_header


def _classify_remote(spec: LaunchSpec, exc: BaseException, *, status: int | None, redact: Redactor,
                     challenge: str = "") -> ServerFailure:
    leaves = _leaf_exceptions(exc)
    text = " ".join(_exception_text(e) for e in leaves)
    if authorization_required(spec, status=status, challenge=challenge):
        again = " again" if spec.vault_bearer else ""
        return ServerFailure("authorization_required",
                             f"{_service(spec.label)} needs the user to sign in{again} (MCP authorization).",
                             "Open the authorization_url given with this error in the user's browser and approve; "
                             "then validate the agent again (or send the chat another message).")
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
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address.is_loopback and allow_loopback:
            continue
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            raise ServerFailure("address_not_allowed", f"{spec.label}: {host} resolves to an internal address.",
                           "Remote MCP servers must be on the public internet.")


def _service(label: str) -> str:
    known = {"github": "GitHub", "gitlab": "GitLab", "openai": "OpenAI", "slack": "Slack", "notion": "Notion"}
    return known.get(label.lower(), label)


def _evidence(text: str, pattern: re.Pattern) -> str:
    """The last line the pattern matched, readable: what the failure was classified by, rather than the last lines
    (a launcher's own stack trace often comes after the server's message, e.g. npm wrappers of Go binaries)."""
    for line in reversed(text.strip().splitlines()):
        if pattern.search(line):
            return _readable_log_line(line.strip())[:300]
    return _last_lines(text)


def _readable_log_line(line: str) -> str:
    """A JSON log line (zap, pino, structlog) as its message and error; any other line as it is."""
    try:
        record = json.loads(line) if line.startswith("{") else None
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    parts = [str(record[k]) for k in ("message", "msg", "event", "error", "err")
             if isinstance(record.get(k), str | int) and record.get(k)]
    return ": ".join(parts) if parts else line


def _last_lines(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())[:600]


