"""The master agent's one output type. Both analyzers (offline rules, Claude via fast-agent) produce a Plan;
everything after analysis (credential requests, agent creation) reads only this."""

from dataclasses import asdict, dataclass, field


@dataclass
class Need:
    """A service or capability the request needs, e.g. gmail (a named service) or web-search (a capability)."""

    key: str
    name: str
    kind: str = "service"  # service | capability
    phrase: str = ""  # the words of the request that asked for it


@dataclass
class ChosenServer:
    need: str
    slug: str
    name: str
    repository_url: str
    confidence: float
    reason: str


@dataclass
class WorkflowStep:
    step: int
    action: str
    server: str | None = None  # catalogue slug; None for a step the model does itself (extract, format...)
    tool: str | None = None
    alternative_tool: str | None = None  # the runner-up tool, should the first not fit at run time


@dataclass
class Question:
    """One thing the planner cannot decide alone: which of a few catalogue servers serves a need."""

    need: str  # the need's key; the answer is remembered under it
    text: str  # the question as the user reads it
    candidates: list[dict] = field(default_factory=list)  # [{"slug", "name", "reason"}], best first


@dataclass
class Plan:
    request: str
    servers: list[ChosenServer] = field(default_factory=list)
    workflow: list[WorkflowStep] = field(default_factory=list)
    needs: list[Need] = field(default_factory=list)
    analyzer: str = "offline"
    notes: list[str] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    # A proposed schedule when the request recurs or watches (agents_app.master.recurrence.propose_schedule).
    schedule: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        return cls(
            request=data.get("request", ""),
            servers=[ChosenServer(**s) for s in data.get("servers", [])],
            workflow=[WorkflowStep(**s) for s in data.get("workflow", [])],
            needs=[Need(**n) for n in data.get("needs", [])],
            analyzer=data.get("analyzer", "offline"),
            notes=list(data.get("notes", [])),
            questions=[Question(**q) for q in data.get("questions", [])],
            schedule=data.get("schedule"),
        )

    def server_slugs(self) -> list[str]:
        return [s.slug for s in self.servers]


def plan_within_limits(plan: Plan, *, max_steps: int, max_servers: int) -> Plan:
    """The plan cut to at most max_steps workflow steps and max_servers servers, with a note saying so.

    One agent cannot sensibly run a hundred-step workflow over dozens of servers, and a reply listing them all
    is unreadable. Servers are kept in the order the kept steps first use them; steps that need a dropped server
    are dropped too, so no step names a server the agent will not have."""
    asked_steps, asked_servers = len(plan.workflow), len(plan.servers)
    steps = plan.workflow[:max_steps] if max_steps > 0 else list(plan.workflow)
    if max_servers > 0 and asked_servers > max_servers:
        first_use = {}
        for step in steps:
            if step.server and step.server not in first_use:
                first_use[step.server] = len(first_use)
        ranked = sorted(plan.servers, key=lambda s: first_use.get(s.slug, len(first_use)))
        kept = {s.slug for s in ranked[:max_servers]}
        plan.servers = [s for s in plan.servers if s.slug in kept]
        steps = [step for step in steps if not step.server or step.server in kept]
    if len(steps) == asked_steps and len(plan.servers) == asked_servers:
        return plan
    for number, step in enumerate(steps, start=1):
        step.step = number
    plan.workflow = steps
    limits = []
    if max_steps > 0 and asked_steps > max_steps:
        limits.append(f"{max_steps} workflow steps")
    if max_servers > 0 and asked_servers > max_servers:
        limits.append(f"{max_servers} servers")
    plan.notes.append(
        f"Your request was cut: it needs {asked_steps} workflow steps over {asked_servers} servers, and one agent "
        f"takes at most {' and '.join(limits)}, so I planned only the first {len(steps)} steps with "
        f"{len(plan.servers)} servers. To do the rest, split the request into smaller ones (a few related steps "
        "each, within those limits) and send each as its own request: each becomes its own agent."
    )
    return plan
