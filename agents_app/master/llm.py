"""The LLM analyzer: the product spec's `workflow_analyzer` as a fast-agent agent on Claude.

The catalogue is exposed to the model as an MCP server (agents_app.master.catalogue_mcp: search_servers,
get_server) that fast-agent starts as a child process on the same database. The model finishes with a JSON
plan; we validate it against the catalogue (slugs exist and are active, tools belong to their server,
confidence in [0, 1], steps in order) and, when it is invalid, send one correction message naming the problems
and ask again, up to ANALYZER_MAX_RETRIES times. API failures (connection refused, 5xx, 401), a plan still
invalid after the retries, or the ANALYZER_TIMEOUT_SECONDS budget running out raise LlmAnalysisFailed, and
agents_app.master.service falls back to the offline analyzer.

Everything the caller gets comes from the catalogue, not from the model: names and repository URLs of the
chosen servers are read from the database.
"""

import asyncio
import concurrent.futures
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections

from agents_app.master import prompts
from agents_app.master.candidates import need_candidates, questions_from_answer
from agents_app.master.catalogue_mcp import child_env
from agents_app.master.plan import ChosenServer, Need, Plan, WorkflowStep
from agents_app.runtime import _RUN_LOCK, run_sync
from registry_app.models import McpServer
from registry_app.selectors import server_search

logger = logging.getLogger(__name__)
# fast-agent takes about a second to import: the methods that run the analysis import it (see analyze), so a
# process loads it when it first analyses with the model, not whenever it imports the master agent.

AGENT_NAME = "workflow_analyzer"
CATALOGUE_SERVER = "catalogue"
# Tool calls the model may make in one answer (one search per need plus a few get_server calls).
MAX_TOOL_ITERATIONS = 12
MAX_OUTPUT_TOKENS = 4096
MAX_REASON_CHARS = 300
MAX_PROBLEMS = 12


class LlmAnalysisFailed(Exception):
    """The model could not produce a usable plan; `reason` says why in one line (never a secret)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CatalogueEntry:
    slug: str
    name: str
    repository_url: str
    active: bool
    tools: tuple[str, ...]


def catalogue_entries(slugs: set[str]) -> dict[str, CatalogueEntry]:
    servers = McpServer.objects.filter(slug__in=slugs).prefetch_related("tools")
    return {
        s.slug: CatalogueEntry(
            slug=s.slug, name=s.name, repository_url=s.repository_url or "",
            active=s.status == McpServer.Status.ACTIVE, tools=tuple(t.name for t in s.tools.all()),
        )
        for s in servers
    }


def _catalogue_entries_in_thread(slugs: set[str]) -> dict[str, CatalogueEntry]:
    # Runs in a worker thread of the event loop (the ORM refuses to run inside a loop): close the thread's
    # connection afterwards so repeated analyses leave none open.
    try:
        return catalogue_entries(slugs)
    finally:
        connections.close_all()


# --- the model's answer -> Plan ---------------------------------------------------------------------------

def extract_json(text: str) -> dict | None:
    """The last top-level JSON object in the text (the model may put prose or a ``` fence around it)."""
    decoder = json.JSONDecoder()
    found = None
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found = value
        index = text.find("{", end)
    return found


def referenced_slugs(data: dict) -> set[str]:
    slugs = set()
    for item in data.get("servers") or []:
        if isinstance(item, dict) and isinstance(item.get("slug"), str):
            slugs.add(item["slug"].strip())
    for item in data.get("workflow") or []:
        if isinstance(item, dict) and isinstance(item.get("server"), str):
            slugs.add(item["server"].strip())
    for item in data.get("questions") or [] if isinstance(data.get("questions"), list) else []:
        if isinstance(item, dict) and isinstance(item.get("candidates"), list):
            slugs.update(s.strip() for s in item["candidates"] if isinstance(s, str))
    return slugs


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def validate_plan(data: Any, *, request: str, catalogue: dict[str, CatalogueEntry],
                  exclude_slugs: set[str] | None = None) -> tuple[Plan | None, list[str]]:
    """(Plan, []) when the answer is usable, else (None, problems) in words the model can act on."""
    if not isinstance(data, dict):
        return None, ["The answer must end with one JSON object with the keys needs, servers and workflow."]
    problems: list[str] = []
    exclude = exclude_slugs or set()
    raw_needs, raw_servers, raw_workflow = data.get("needs", []), data.get("servers"), data.get("workflow")
    for key, value in (("needs", raw_needs), ("servers", raw_servers), ("workflow", raw_workflow)):
        if not isinstance(value, list):
            problems.append(f'"{key}" must be a list.')
    if problems:
        return None, problems

    needs: dict[str, Need] = {}
    for index, item in enumerate(raw_needs, start=1):
        if isinstance(item, str) and item.strip():
            item = {"key": item}
        key = _text(item.get("key")) if isinstance(item, dict) else ""
        if not key:
            problems.append(f'needs[{index}] must be an object with a non-empty "key".')
            continue
        kind = _text(item.get("kind")) or "service"
        needs.setdefault(key, Need(key=key, name=_text(item.get("name")) or key,
                                   kind=kind if kind in {"service", "capability"} else "service",
                                   phrase=_text(item.get("phrase"))))

    chosen: dict[str, ChosenServer] = {}
    for index, item in enumerate(raw_servers, start=1):
        if not isinstance(item, dict):
            problems.append(f"servers[{index}] must be an object.")
            continue
        slug, need = _text(item.get("slug")), _text(item.get("need"))
        confidence = _number(item.get("confidence"))
        entry = catalogue.get(slug)
        if not slug:
            problems.append(f'servers[{index}] has no "slug".')
            continue
        if entry is None:
            problems.append(f'servers[{index}]: "{slug}" is not a catalogue slug; use a slug returned by search_servers.')
            continue
        if not entry.active:
            problems.append(f'servers[{index}]: "{slug}" is no longer active in the catalogue; choose another server.')
            continue
        if slug in exclude:
            problems.append(f'servers[{index}]: the user ruled out "{slug}"; choose another server.')
            continue
        if not need:
            problems.append(f'servers[{index}] ("{slug}") has no "need".')
        if confidence is None or not 0.0 <= confidence <= 1.0:
            problems.append(f'servers[{index}] ("{slug}"): "confidence" must be a number from 0 to 1.')
        if not need or confidence is None or not 0.0 <= confidence <= 1.0:
            continue
        needs.setdefault(need, Need(key=need, name=need))
        if slug in chosen:  # one server serving several needs
            chosen[slug].need += f", {need}"
            chosen[slug].confidence = max(chosen[slug].confidence, round(confidence, 2))
            continue
        chosen[slug] = ChosenServer(
            need=need, slug=slug, name=entry.name, repository_url=entry.repository_url,
            confidence=round(confidence, 2), reason=_text(item.get("reason"))[:MAX_REASON_CHARS],
        )

    steps: list[WorkflowStep] = []
    previous = 0
    for index, item in enumerate(raw_workflow, start=1):
        if not isinstance(item, dict):
            problems.append(f"workflow[{index}] must be an object.")
            continue
        number, action = item.get("step"), _text(item.get("action"))
        server, tool = _text(item.get("server")) or None, _text(item.get("tool")) or None
        if isinstance(number, bool) or not isinstance(number, int) or number <= previous:
            problems.append(f'workflow[{index}]: "step" must be an integer larger than the previous step\'s.')
        else:
            previous = number
        if not action:
            problems.append(f'workflow[{index}] has no "action".')
        if server is not None and server not in chosen:
            if server in catalogue and catalogue[server].active and server not in exclude:
                problems.append(f'workflow[{index}] uses "{server}", which is not in "servers"; add it there or '
                                f"use a chosen server.")
            else:
                problems.append(f'workflow[{index}]: "{server}" is not a usable catalogue slug.')
            continue
        if server is None:
            tool = None  # a step the model does itself
        elif tool is not None:
            known = catalogue[server].tools
            if not known:
                tool = None  # the catalogue does not know this server's tools: a named tool would be a guess
            elif tool not in known:
                match = next((t for t in known if t.lower() == tool.lower()), None)
                if match is None:
                    listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
                    problems.append(f'workflow[{index}]: "{tool}" is not a tool of "{server}" (its tools: {listed}).')
                tool = match
        steps.append(WorkflowStep(step=len(steps) + 1, action=action, server=server, tool=tool))
    if chosen and not raw_workflow:
        problems.append('"workflow" is empty: give the ordered steps.')
    known = {slug: entry.name for slug, entry in catalogue.items() if entry.active and slug not in exclude}
    questions, question_problems = questions_from_answer(data.get("questions"), known=known)
    problems.extend(question_problems)

    if problems:
        return None, problems[:MAX_PROBLEMS]
    served = {need for s in chosen.values() for need in s.need.split(", ")}
    notes = [f"No catalogue server found for {n.name}." for n in needs.values() if n.key not in served]
    return Plan(request=request, servers=list(chosen.values()), workflow=steps, needs=list(needs.values()),
                analyzer="llm", notes=notes, questions=questions[:1]), []


# --- running the agent --------------------------------------------------------------------------------------

def _provider_error(reply: Any) -> str:
    """One line for a failed model call (fast-agent turns API errors into an assistant message)."""
    channels = reply.channels or {}
    for block in channels.get("fast-agent-provider-error", []):
        try:
            info = json.loads(getattr(block, "text", "") or "{}")
        except ValueError:
            continue
        status = f" (HTTP {info['status']})" if info.get("status") else ""
        return f"model API error: {info.get('error_type') or 'unknown'}{status}"
    return "model API error"


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {' '.join(str(text).split())}"[:300]


class LlmAnalyzer:
    name = "llm"

    def __init__(self, *, model: str | None = None, timeout: float | None = None, max_retries: int | None = None):
        self.model = model or settings.ANALYZER_MODEL
        self.timeout = float(timeout if timeout is not None else settings.ANALYZER_TIMEOUT_SECONDS)
        self.max_retries = max(0, int(max_retries if max_retries is not None else settings.ANALYZER_MAX_RETRIES))

    def analyze(self, request: str, *, exclude_slugs: set[str] | None = None,
                choices: dict[str, str] | None = None) -> Plan:
        """A validated Plan, or LlmAnalysisFailed. Safe from Celery workers, request threads and async code.
        choices: the user's answers to earlier questions ({need key: slug})."""
        if not settings.ANTHROPIC_API_KEY:
            raise LlmAnalysisFailed("ANTHROPIC_API_KEY is not set")
        # The same per-need candidates the offline analyzer weighs, read here (the ORM cannot run in the loop).
        def read_candidates():
            try:
                return need_candidates(request, lambda query, limit: server_search(query=query, limit=limit),
                                       set(exclude_slugs or ()))
            finally:
                if in_loop:
                    connections.close_all()  # the helper thread's own connection

        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        if in_loop:  # the ORM refuses to run inside an event loop: read them in a thread of our own
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                candidates = pool.submit(read_candidates).result()
        else:
            candidates = read_candidates()
        # fast-agent keeps process-global settings and reads ./fastagent.config.yaml and ./.env: one run per
        # process at a time, from a private empty directory (shared with agent runs: agents_app.runtime).
        # The budget starts after this one-off import per process (about 1.3 s idle, far more on a busy machine):
        # a cold worker should not spend its first analysis's budget on it.
        from fast_agent import FastAgent  # noqa: F401

        deadline = time.monotonic() + self.timeout
        catalogue_env = child_env()  # read in the caller's thread: the test database name lives here
        started = time.monotonic()
        with _RUN_LOCK:
            workdir = tempfile.mkdtemp(prefix="mcpagent-analyzer-")
            previous_cwd = os.getcwd()
            try:
                os.chdir(workdir)
                plan = run_sync(lambda: self._analyze_async(
                    request, exclude_slugs=set(exclude_slugs or ()), deadline=deadline, workdir=workdir,
                    catalogue_env=catalogue_env, candidates=candidates, choices=choices or {},
                ))
            except SystemExit as exc:  # fast-agent start-up errors (bad model name, missing key...)
                raise LlmAnalysisFailed(f"fast-agent could not start: {_describe(exc.__cause__ or exc.__context__)}")
            finally:
                os.chdir(previous_cwd)
                shutil.rmtree(workdir, ignore_errors=True)
        logger.info("LLM analysis chose %s in %.1f s", plan.server_slugs(), time.monotonic() - started)
        return plan

    def _write_config(self, workdir: str) -> str:
        config: dict[str, Any] = {
            "default_model": self.model,
            # Retries of failed API calls happen in the Anthropic SDK (2, short backoff); fast-agent's own retry
            # waits 10 s per attempt, too long for a chat turn, and we fall back to the offline analyzer instead.
            "llm_retries": 0,
            # aggregate_parallel off: fast-agent 0.10.48 prints aggregated parallel tool results to stdout even
            # with show_tools off, which would corrupt `manage.py analyze --json`.
            "logger": {"progress_display": False, "show_chat": False, "show_tools": False, "level": "error",
                       "tool_display": {"aggregate_parallel": False}},
        }
        if settings.ANTHROPIC_BASE_URL:
            config["anthropic"] = {"base_url": settings.ANTHROPIC_BASE_URL}
        path = os.path.join(workdir, "fastagent.config.yaml")
        with open(path, "w") as handle:
            json.dump(config, handle)  # JSON is YAML; the API key is not in it (passed to the agent in memory)
        return path

    async def _analyze_async(self, request: str, *, exclude_slugs: set[str], deadline: float, workdir: str,
                             catalogue_env: dict[str, str], candidates: list[dict], choices: dict[str, str]) -> Plan:
        from fast_agent import FastAgent
        from fast_agent.llm.request_params import RequestParams

        fast = FastAgent(AGENT_NAME, config_path=self._write_config(workdir), parse_cli_args=False, quiet=True,
                         no_home=True, isolated=True)
        fast.agent(
            name=AGENT_NAME, instruction=prompts.INSTRUCTION, model=self.model, api_key=settings.ANTHROPIC_API_KEY,
            request_params=RequestParams(max_tokens=MAX_OUTPUT_TOKENS, max_iterations=MAX_TOOL_ITERATIONS),
        )(lambda: None)
        outcome: Plan | LlmAnalysisFailed
        try:
            async with fast.run() as app:
                # Never raise inside the block: fast-agent turns some exceptions into SystemExit.
                outcome = await self._converse(app[AGENT_NAME], request, exclude_slugs=exclude_slugs,
                                               deadline=deadline, catalogue_env=catalogue_env,
                                               candidates=candidates, choices=choices)
        except SystemExit as exc:
            outcome = LlmAnalysisFailed(f"fast-agent could not start: {_describe(exc.__cause__ or exc.__context__)}")
        if isinstance(outcome, LlmAnalysisFailed):
            raise outcome
        return outcome

    async def _converse(self, agent: Any, request: str, *, exclude_slugs: set[str], deadline: float,
                        catalogue_env: dict[str, str], candidates: list[dict],
                        choices: dict[str, str]) -> Plan | LlmAnalysisFailed:
        from fast_agent.config import MCPServerSettings
        from fast_agent.llm.request_params import RequestParams
        from fast_agent.mcp.mcp_aggregator import MCPAttachOptions
        from fast_agent.types import LlmStopReason

        def remaining() -> float:
            return deadline - time.monotonic()

        try:
            await agent.attach_mcp_server(
                server_name=CATALOGUE_SERVER,
                server_config=MCPServerSettings(
                    name=CATALOGUE_SERVER, transport="stdio", command=sys.executable,
                    args=["-m", "agents_app.master.catalogue_mcp"], env=catalogue_env, cwd=str(settings.BASE_DIR),
                    read_timeout_seconds=max(1, int(remaining())), reconnect_on_disconnect=False,
                ),
                options=MCPAttachOptions(startup_timeout_seconds=max(1.0, remaining())),
            )
        except Exception as exc:  # noqa: BLE001 -- any start-up failure means: plan offline
            return LlmAnalysisFailed(f"the catalogue tool server did not start: {_describe(exc)}")

        message = prompts.request_message(request, exclude_slugs=exclude_slugs, candidates=candidates,
                                          choices=choices)
        problems: list[str] = []
        for attempt in range(1 + self.max_retries):
            if remaining() <= 0:
                return LlmAnalysisFailed(f"no usable plan within {self.timeout:g} s")
            # The stream timeouts (start and idle) get what is left of the budget; never wait_for around a call.
            params = RequestParams(streaming_timeout=max(1.0, remaining()))
            try:
                reply = await agent.generate(message, params)
            except Exception as exc:  # noqa: BLE001 -- provider/transport failures: plan offline
                return LlmAnalysisFailed(f"model call failed: {_describe(exc)}")
            if reply.stop_reason == LlmStopReason.ERROR:
                return LlmAnalysisFailed(_provider_error(reply))
            if reply.stop_reason == LlmStopReason.MAX_ITERATIONS:
                return LlmAnalysisFailed(f"the model made more than {MAX_TOOL_ITERATIONS} tool calls")
            if remaining() <= 0:
                return LlmAnalysisFailed(f"no usable plan within {self.timeout:g} s")
            data = extract_json(reply.last_text() or "")
            if data is None:
                problems = ["The answer did not end with a JSON object with the keys needs, servers and workflow."]
            else:
                catalogue = await asyncio.to_thread(_catalogue_entries_in_thread, referenced_slugs(data))
                plan, problems = validate_plan(data, request=request, catalogue=catalogue, exclude_slugs=exclude_slugs)
                if plan is not None:
                    return plan
            logger.warning("LLM plan rejected (attempt %d): %s", attempt + 1, "; ".join(problems))
            message = prompts.correction_message(problems)
        # Users see this in a note: the first problem only (all of them are in the log).
        return LlmAnalysisFailed(f"invalid plan after {1 + self.max_retries} attempt(s): {problems[0]}"[:300])
