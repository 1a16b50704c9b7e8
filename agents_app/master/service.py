"""The master agent: request -> Plan. With ANTHROPIC_API_KEY the analysis runs as a fast-agent agent on Claude
(agents_app.master.llm); without it, or when the model fails after retries, the offline analyzer does the same job.
Both return a Plan; everything after this point is one code path."""

import logging

from django.conf import settings

from agents_app.master.llm import LlmAnalysisFailed, LlmAnalyzer
from agents_app.master.offline import OfflineAnalyzer
from agents_app.master.plan import Plan, plan_within_limits
from agents_app.master.recurrence import propose_schedule
from agents_app.master.requirements import plan_requirements
from mcpagent.metrics import ANALYSIS_DURATION

logger = logging.getLogger(__name__)


def analyze_request(*, request: str, exclude_slugs: set[str] | None = None,
                    choices: dict[str, str] | None = None, timezone_name: str = "UTC") -> Plan:
    """choices: the user's answers to earlier questions ({need key: slug})."""
    plan = plan_within_limits(_analyze(request, exclude_slugs, choices or {}), max_steps=settings.PLAN_MAX_STEPS,
                              max_servers=settings.PLAN_MAX_SERVERS)
    plan.schedule = propose_schedule(request, timezone_name)
    return plan


@ANALYSIS_DURATION.time()
def _analyze(request: str, exclude_slugs: set[str] | None, choices: dict[str, str]) -> Plan:
    if settings.ANTHROPIC_API_KEY:
        try:
            return LlmAnalyzer().analyze(request, exclude_slugs=exclude_slugs, choices=choices)
        except LlmAnalysisFailed as exc:
            logger.warning("LLM analysis failed, falling back to the offline analyzer: %s", exc)
            plan = OfflineAnalyzer().analyze(request, exclude_slugs=exclude_slugs, choices=choices)
            plan.notes.append(f"The model was unavailable ({exc.reason}); planned offline.")
            return plan
    return OfflineAnalyzer().analyze(request, exclude_slugs=exclude_slugs, choices=choices)


def analysis_result(plan: Plan) -> dict:
    """The `analyze` command's and API's view of a plan: servers, required credentials, workflow."""
    requirements = plan_requirements(plan.server_slugs())
    return {
        "servers": [
            {"slug": s.slug, "name": s.name, "repository_url": s.repository_url, "confidence": s.confidence,
             "reason": s.reason, "need": s.need}
            for s in plan.servers
        ],
        "required_credentials": requirements["required_credentials"],
        "optional_settings": requirements["optional_settings"],
        "required_files": requirements["required_files"],
        "workflow": [
            {"step": w.step, "action": w.action, "server": w.server, "tool": w.tool,
             "alternative_tool": w.alternative_tool} for w in plan.workflow
        ],
        "analyzer": plan.analyzer,
        "notes": plan.notes,
        "questions": [{"need": q.need, "question": q.text, "candidates": q.candidates} for q in plan.questions],
        "schedule": plan.schedule,
    }
