"""Which catalogue server a need gets: what a careful engineer would choose, by rules in this order.

1. Never a retired server: deprecated, hidden, or archived upstream (registry_app.standing.retired), nor a test or
   demo listing while a real one exists.
2. One that can be built here: its launch recipe runs on this host with credentials the user can get alone
   (agents_app.master.launchability); a server we cannot start cannot become an agent.
3. One whose tools can do the step, when its tools are known: an outbound-only mail service does not download
   attachments (agents_app.master.tool_choice.can_do).
4. The edition the user most likely has: a server only for a self-hosted edition ("Jira Data Center", "on-prem")
   comes after the others unless the request says self-hosted.
5. The vendor's own server: flagged official by a source or a curator, or published under the vendor's own
   account (github/github-mcp-server, stripe/agent-toolkit).
6. Then the most used maintained one: the sources' popularity signals (listed by several catalogues, Docker's
   reviewed catalog, the official registry, tools verified by starting it...), with completeness (known tools,
   declared credentials) and relevance to the request.

The reason given to the user names the rule that decided between the chosen server and the next best.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.db.models import Count

from agents_app.master.launchability import Launchability, assess
from agents_app.master.lexicon import ServiceEntry
from agents_app.master.tool_choice import can_do, server_tools
from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer
from registry_app.standing import is_test_listing, retired

# The MCP project's reference servers (time, git, fetch...): maintained, but nobody's "own" server of a vendor.
REFERENCE_REPOSITORY = "https://github.com/modelcontextprotocol/servers"
_SELF_HOSTED = re.compile(r"\b(?:data ?cent(?:er|re)|on[- ]?prem(?:ise|ises)?|self[- ]?hosted|server edition)\b|-dc-", re.I)
# Account names around a vendor's own name: makenotion, notionhq, getsentry, stripe-samples...
_VENDOR_AFFIXES = re.compile(r"^(?:get|make|use|try|the)|(?:hq|api|inc|labs?|dev|app|ai|io|oss|official|team|corp)$")


@dataclass
class Candidate:
    hit: object  # a search hit: .server, .score
    rank: int  # 0 = the search's best for this need
    launch: Launchability
    tools: int
    credentials: int
    vendor_own: bool
    reference: bool
    test: bool
    self_hosted: bool
    tool_fit: bool | None  # one of its tools reads/writes as the step does; None: its tools are unknown
    facts: list[str] = field(default_factory=list)

    @property
    def server(self) -> McpServer:
        return self.hit.server

    @property
    def fits_step(self) -> bool:
        return self.tool_fit is not False

    def quality(self) -> float:
        """Maintained and widely used, then complete, then relevant: 0..1."""
        server = self.server
        return (0.45 * min(1.0, max(server.popularity, 0.0)) + 0.15 * server.verified
                + 0.12 * min(1.0, self.tools / 4) + 0.1 * (self.credentials > 0) + 0.18 / (1.0 + 0.15 * self.rank))


# Rules in order of precedence: (what the reason says, the candidate's value under the rule; higher is better).
RULES: tuple[tuple[str, object], ...] = (
    ("the only one that can run here", lambda c: c.launch.runnable_here),
    ("its tools fit the step", lambda c: c.fits_step),
    ("a real server, not a test listing", lambda c: not c.test),
    ("for the cloud edition most users have", lambda c: not c.self_hosted),
    ("the vendor's own server", lambda c: c.vendor_own),
)


def vendor_owns(entry: ServiceEntry, server: McpServer) -> bool:
    """Is this the vendor's own server: flagged official, or published under the vendor's own account?"""
    if server.official:
        return True
    if entry.kind != "service":
        return False
    parts = [p for p in (server.repository_url or "").split("/") if p]
    owner = parts[2].lower() if len(parts) >= 3 and "://" in (server.repository_url or "") else ""
    core = _VENDOR_AFFIXES.sub("", owner.replace("-", "").replace("_", "")) if owner else ""
    return bool(core) and core in {m.replace(" ", "").replace("-", "") for m in entry.match}


def candidates(entry: ServiceEntry, clause: str, verb: str | None, hits: list, *, request: str) -> list[Candidate]:
    """The usable candidates among `hits` (search hits for the need, best first), with what the rules read."""
    live = [h for h in sorted(hits, key=lambda h: -h.score)
            if not retired(status=h.server.status, repository_url=h.server.repository_url)]
    ids = [h.server.id for h in live]
    n_tools = dict(McpServer.objects.filter(id__in=ids).annotate(n=Count("tools")).values_list("id", "n"))
    kinds: dict[int, set[str]] = {}
    for server_id, kind in LaunchRecipe.objects.filter(server_id__in=ids).values_list("server_id", "kind"):
        kinds.setdefault(server_id, set()).add(kind)
    credentials: dict[int, list[dict]] = {}
    for row in CredentialRequirement.objects.filter(server_id__in=ids).values(
        "server_id", "key", "location", "description", "instructions", "required", "secret", "default"
    ):
        credentials.setdefault(row["server_id"], []).append(row)
    tools = server_tools({h.server.slug for h in live})
    wants_self_hosted = bool(_SELF_HOSTED.search(request))
    found = []
    # A listing with neither known tools nor a way to start it cannot become an agent: never a choice.
    live = [h for h in live if n_tools.get(h.server.id) or kinds.get(h.server.id)]
    for rank, hit in enumerate(live):
        server = hit.server
        described = f"{server.slug} {server.name} {server.description[:200]}"
        candidate = Candidate(
            hit=hit, rank=rank, launch=assess(kinds.get(server.id, set()), credentials.get(server.id, [])),
            tools=n_tools.get(server.id, 0), credentials=len(credentials.get(server.id, [])),
            vendor_own=vendor_owns(entry, server),
            reference=(server.repository_url or "").rstrip("/") == REFERENCE_REPOSITORY,
            test=is_test_listing(slug=server.slug, name=server.name),
            self_hosted=not wants_self_hosted and bool(_SELF_HOSTED.search(described)),
            tool_fit=can_do(verb, tools.get(server.slug, [])),
        )
        candidate.facts = _facts(candidate)
        found.append(candidate)
    return found


def _facts(c: Candidate) -> list[str]:
    facts = []
    if c.vendor_own:
        facts.append("official (the vendor's own)")
    elif c.reference:
        facts.append("reference server of the MCP project")
    if c.server.verified:
        facts.append("verified")
    if c.tools:
        facts.append(f"{c.tools} known tools")
    if c.credentials:
        facts.append("declared credentials")
    if c.launch.runnable_here:
        facts.append("runnable launch recipe")
    return facts


def _key(c: Candidate) -> tuple:
    return (*(bool(value(c)) for _, value in RULES), c.quality())


def choose(found: list[Candidate]) -> tuple[Candidate, str] | None:
    """The best candidate and the rule that put it before the next best (in words, for the reason)."""
    if not found:
        return None
    ranked = sorted(found, key=_key, reverse=True)
    best = ranked[0]
    if len(ranked) == 1:
        return best, "the only maintained match in the catalogue"
    runner_up = ranked[1]
    for words, value in RULES:
        if bool(value(best)) != bool(value(runner_up)):
            return best, words
    if best.server.popularity > runner_up.server.popularity:
        rule = "the most used maintained server"
    else:
        rule = "the most complete and relevant maintained server"
    # Among several listings of the vendor's own server, say both.
    return best, f"the vendor's own server ({rule.removeprefix('the ')})" if best.vendor_own else rule
