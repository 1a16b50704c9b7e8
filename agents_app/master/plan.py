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


@dataclass
class Plan:
    request: str
    servers: list[ChosenServer] = field(default_factory=list)
    workflow: list[WorkflowStep] = field(default_factory=list)
    needs: list[Need] = field(default_factory=list)
    analyzer: str = "offline"
    notes: list[str] = field(default_factory=list)

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
        )

    def server_slugs(self) -> list[str]:
        return [s.slug for s in self.servers]
