"""Checks of what a client sends to create or run an agent: text sizes, the model name, scripted playback steps,
and the mcpServers entries (the safety checks, plus credential references and URL variables)."""

import re
from typing import Any

from django.conf import settings

from agents_app import mcp_config, safety
from mcpagent.errors import ApplicationError

MAX_PROMPT_CHARS = 20_000
MAX_WORKFLOW_CHARS = 50_000
MAX_MESSAGE_CHARS = 50_000
MAX_PLAYBACK_STEPS = 100
MAX_SERVER_INFO_CHARS = 256 * 1024
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$")
OFFLINE_MODELS = ("passthrough", "playback")


def check_text(value: Any, *, field: str, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ApplicationError(f"{field} is required (a non-empty string).", code="invalid_input",
                               details={"field": field})
    if len(value) > limit:
        raise ApplicationError(f"{field} is longer than {limit} characters.", code="invalid_input",
                               details={"field": field, "max": limit})
    return value


def check_model(model: str | None) -> str:
    model = (model or settings.AGENT_DEFAULT_MODEL).strip()
    if not MODEL_RE.match(model):
        raise ApplicationError("model is not a valid model name.", code="invalid_input", details={"field": "model"})
    if model not in OFFLINE_MODELS:
        # fast-agent's own parser (imported lazily, ~1 s once per process): an unknown model is a 400 now, not a
        # failed run later.
        from fast_agent.llm.model_factory import ModelFactory

        try:
            ModelFactory.parse_model_string(model)
        except Exception as exc:  # noqa: BLE001 -- fast-agent raises its own config error types
            raise ApplicationError(f"fast-agent does not know the model {model!r}.", code="invalid_input",
                                   details={"field": "model", "problem": str(exc).splitlines()[0][:300]}) from None
    return model


def check_playback(playback: Any) -> list[dict] | None:
    if playback is None:
        return None
    if not isinstance(playback, list) or not playback or len(playback) > MAX_PLAYBACK_STEPS:
        raise ApplicationError(f"playback must be a list of 1-{MAX_PLAYBACK_STEPS} steps.", code="invalid_input",
                               details={"field": "playback"})
    steps = []
    for index, step in enumerate(playback):
        where = {"field": f"playback[{index}]"}
        if not isinstance(step, dict) or step.get("role") not in ("user", "assistant"):
            raise ApplicationError("each playback step needs role user or assistant.", code="invalid_input",
                                   details=where)
        calls = step.get("tool_calls") or []
        if not isinstance(calls, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("arguments", {}), dict)
            for c in calls
        ):
            raise ApplicationError("tool_calls are [{name, arguments}].", code="invalid_input", details=where)
        steps.append({"role": step["role"], "text": str(step.get("text", ""))[:MAX_MESSAGE_CHARS],
                      "tool_calls": [{"name": c["name"], "arguments": c.get("arguments", {})} for c in calls]})
    return steps


def check_servers(servers: Any) -> dict[str, dict]:
    """safety.check_servers, with each credential argument ({"$credential": KEY}) checked as the stand-in
    "{KEY}" (so a reference where the launcher expects its package or options is refused) and kept as the
    reference in the result. A remote URL template's "url_vars" ({VAR: reference}) are checked here: only
    references, only variables of the URL, none in its scheme or user part (the URL itself is checked as
    usual, and again once filled at start)."""
    if not isinstance(servers, dict):
        return safety.check_servers(servers)
    references: dict[str, list] = {}
    url_vars: dict[str, Any] = {}
    checked: dict[Any, Any] = {}
    for name, entry in servers.items():
        args = entry.get("args") if isinstance(entry, dict) else None
        if isinstance(args, list) and any(mcp_config.is_reference(a) for a in args):
            references[name] = list(args)
            entry = {**entry, "args": [mcp_config.arg_placeholder(a) if mcp_config.is_reference(a) else a
                                       for a in args]}
        if isinstance(entry, dict) and mcp_config.URL_VARS in entry:
            url_vars[name] = entry[mcp_config.URL_VARS]
            entry = {k: v for k, v in entry.items() if k != mcp_config.URL_VARS}
        checked[name] = entry
    normalised = safety.check_servers(checked)
    for name, args in references.items():
        normalised[name]["args"] = args
    violations = []
    for name, variables in url_vars.items():
        problem = _url_vars_problem(normalised[name], variables)
        if problem:
            violations.append({"server": str(name)[:80], "field": mcp_config.URL_VARS, "problem": problem})
        else:
            normalised[name][mcp_config.URL_VARS] = dict(variables)
    if violations:
        first = violations[0]
        raise ApplicationError(f"MCP server '{first['server']}' is not allowed: {first['field']}: {first['problem']}",
                               code="unsafe_mcp_config", details={"violations": violations})
    return normalised


def _url_vars_problem(entry: dict, variables: Any) -> str | None:
    if entry.get("transport") == "stdio":
        return "only a remote server's URL has variables"
    if not isinstance(variables, dict) or not variables or len(variables) > 16:
        return "must be an object of 1-16 {VAR: {\"$credential\": KEY}}"
    if not all(mcp_config.is_reference(ref) and not ref.get("file") and not ref.get("template")
               for ref in variables.values()):
        return "each variable must be a credential reference {\"$credential\": KEY}"
    try:
        mcp_config.url_variable_parts(entry["url"], [str(var) for var in variables])
    except ValueError as exc:
        return str(exc)
    return None
