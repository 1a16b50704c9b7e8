"""One fast-agent agent attached to an agent's servers, and one user message through it. Used by cold runs (servers
started for the run) and by warm ones (servers kept by agents_app.runtime.pool); `converse` is where a message runs.
fast_agent is imported lazily (about 1.3 s) and only where a run needs it."""

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from mcp import CallToolRequest
from mcp_types import CallToolRequestParams

from agents_app import sandbox
from agents_app.mcp_config import LaunchSpec
from agents_app.runtime.launch import ServerFailure, _exception_text, limit_failure
from agents_app.runtime.validation import _check_remote_address
from mcpagent.redaction import Redactor

# fast-agent takes about a second to import: the functions that start an app import it, so a process loads it when
# it first runs an agent, not whenever it imports agents_app.runtime.

TOOL_TEXT_CHARS = 20_000


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
    # The run used servers that were already running (kept warm by agents_app.runtime.pool).
    warm: bool = False


def failure_outcome(spec_name: str | None, failure: ServerFailure) -> RunOutcome:
    return RunOutcome(ok=False, error={"server": spec_name, "code": failure.code, "message": failure.message,
                                       "hint": failure.hint})


async def remote_addresses_problem(specs: list[LaunchSpec]) -> RunOutcome | None:
    """Each remote server's host checked again at each run: its DNS may have changed since validation."""
    for spec in specs:
        if spec.transport != "stdio":
            try:
                await _check_remote_address(spec)
            except ServerFailure as failure:
                return failure_outcome(spec.name, failure)
    return None


def write_config(workdir: str, model: str) -> str:
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
    # The file may hold the API key: private to us, removed with the directory when the agent stops.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle)  # JSON is YAML, and needs no escaping rules of our own
    return path


async def with_agent(*, specs: list[LaunchSpec], launches: dict[str, sandbox.SandboxedLaunch], redact: Redactor,
                     instruction: str, model: str, startup_timeout: float, tool_timeout: int, workdir: str,
                     use: Callable[[Any], Awaitable[RunOutcome | None]]) -> RunOutcome | None:
    """Start a fast-agent app from `workdir` with one agent attached to every server (stdio ones through their
    `launches`), and hand the agent to `use`; returns what `use` returns, or a failed outcome when the app or a
    server could not start. Callers hold _RUN_LOCK with `workdir` as the working directory while this starts."""
    from fast_agent import FastAgent
    from fast_agent.config import MCPServerSettings
    from fast_agent.mcp.mcp_aggregator import MCPAttachOptions

    config_path = write_config(workdir, model)
    fast = FastAgent("mcpagent", config_path=config_path, parse_cli_args=False, quiet=True, no_home=True,
                     isolated=True)
    fast.agent(name="agent", instruction=instruction or "You are a helpful agent.", model=model)(lambda: None)
    try:
        async with fast.run() as app:
            agent = app["agent"]

            async def attach(spec: LaunchSpec) -> RunOutcome | None:
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
                return None

            # All servers start at once: a run waits for the slowest, not for the sum.
            failures = [f for f in await asyncio.gather(*(attach(spec) for spec in specs)) if f is not None]
            if failures:
                return failures[0]
            return await use(agent)
    except SystemExit as exc:
        return RunOutcome(ok=False, error=_run_error(redact, exc.__cause__ or exc.__context__ or exc))


async def converse(agent: Any, *, message: str, history: list[dict], playback: list[dict] | None,
                   redact: Redactor, watch: Callable[[Any, Redactor], None] | None = None) -> RunOutcome:
    """Where a run executes: the agent forgets any earlier run (a warm agent serves many), gets the conversation
    so far (or the playback script), and answers `message`, calling tools on its servers. `watch(agent, redact)`
    may wrap the agent's tool calls for this run only (agents_app.run_events); a warm agent is handed back as it was."""
    if watch is None:
        return await _converse(agent, message=message, history=history, playback=playback, redact=redact)
    unwatched = agent.call_tool
    watch(agent, redact)
    try:
        return await _converse(agent, message=message, history=history, playback=playback, redact=redact)
    finally:
        agent.call_tool = unwatched


async def _converse(agent: Any, *, message: str, history: list[dict], playback: list[dict] | None,
                    redact: Redactor) -> RunOutcome:
    agent.clear()
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


def apply_limits(outcome: RunOutcome, specs: list[LaunchSpec], launches: dict[str, sandbox.SandboxedLaunch]) -> None:
    """A sandbox limit a server ran into explains a failure better than what the server or the model said."""
    limits = {name: hit for name, launch in launches.items() if (hit := launch.limit_hit())}
    if not limits:
        return
    spec = next(s for s in specs if s.name in limits)
    outcome.limits = limits
    if not outcome.ok or any(t["metadata"].get("is_error") for t in outcome.turns):
        outcome.ok, outcome.error = False, limit_failure(spec, limits[spec.name])


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
