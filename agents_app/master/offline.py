"""The offline analyzer: request -> Plan with no model, deterministically, from the catalogue.

Retrieval + rules: the lexicon (config/config.json) names the services and capabilities a request needs;
registry_app search finds candidate servers for each; a server is chosen per need among those whose name, slug or
repository names the service, by the rules of agents_app.master.choice; the request's clauses become ordered
workflow steps, each with the server and the tool that means what the step says (agents_app.master.tool_choice).
"""

import re

from agents_app.master import choice
from agents_app.master.lexicon import ServiceEntry, lexicon
from agents_app.master.needs import CAPABILITY_PREFIX, MAX_QUERY_CHARS, capability_entry, choose_capability, covered as _covered, detect_needs
from agents_app.master.plan import ChosenServer, Need, Plan, WorkflowStep
from agents_app.master.tool_choice import choose_tool, server_tools
from registry_app.selectors import server_search

_PREAMBLE = re.compile(
    r"^(?:(?:hi|hello|hey)[,!]?\s+)?(?:please\s+)?(?:i\s+(?:want|need|would like|'d like)|i'd like|can you|could you|help me|let's)"
    r"(?:\s+(?:to|you to))?(?:\s+(?:create|build|set up|setup|make|have|get))?(?:\s+(?:me))?"
    r"(?:\s+(?:an?|the|my))?(?:\s+(?:new|simple|small))?(?:\s+(?:ai\s+)?(?:workflow|agent|automation|bot|assistant|pipeline))?"
    r"(?:\s+(?:that|which|to|who|for))?\s*",
    re.IGNORECASE,
)
_CLAUSE_SPLIT = re.compile(r"\s*(?:[.;]\s+|,\s*(?:and\s+)?(?:then\s+)?|\s+and\s+then\s+|\s+then\s+|\s+and\s+|\s+after that\s+)\s*", re.I)

# Verbs we recognise at the start of a clause (base forms); used to normalise "monitors" -> "Monitor".
_VERBS = {
    "monitor", "watch", "check", "read", "fetch", "get", "find", "search", "look", "list", "pull", "collect",
    "gather", "scan", "track", "listen", "receive", "download", "scrape", "crawl", "extract", "parse",
    "summarize", "summarise", "classify", "categorize", "translate", "analyze", "analyse", "filter", "format",
    "compare", "draft", "write", "generate", "rank", "tag", "convert", "store", "save", "create", "add", "log",
    "record", "append", "insert", "upload", "file", "put", "update", "send", "post", "notify", "alert", "ping",
    "message", "email", "tell", "share", "publish", "tweet", "reply", "schedule", "book", "open", "close",
    "assign", "comment", "merge", "review", "deploy", "run", "query", "sync", "copy", "move", "backup",
    "archive", "delete", "remove", "label", "forward", "text", "call", "remind", "report", "build", "commit",
    "push", "take", "make", "keep", "use", "plot", "chart", "visualize", "detect", "identify", "match", "set",
}
_STORE_VERBS = {"store", "save", "add", "log", "record", "write", "append", "insert", "upload", "file", "put", "create"}


def _base_verb(word: str) -> str | None:
    word = word.lower()
    for candidate in (word, word[:-1] if word.endswith("s") else None, word[:-2] if word.endswith("es") else None,
                      word[:-3] + "y" if word.endswith("ies") else None):
        if candidate and candidate in _VERBS:
            return candidate
    return None


def _clauses(request: str) -> list[str]:
    text = _PREAMBLE.sub("", request.strip(), count=1)
    parts = [p.strip(" ,.;:!?\n\t") for p in _CLAUSE_SPLIT.split(text)]
    clauses: list[str] = []
    previous_verb = None
    for part in parts:
        if not part:
            continue
        words = part.split()
        verb = _base_verb(words[0])
        if verb is None and clauses and not detect_needs(part):
            # "the time in Tokyo and New York": a fragment naming nothing belongs to the clause before it.
            clauses[-1] = f"{clauses[-1]} and {part}"
            continue
        if verb is None and previous_verb and clauses:
            # "read my gmail and slack": the second part borrows the first part's verb.
            part = f"{previous_verb} {part}"
        elif verb is not None:
            previous_verb = verb
            part = " ".join([verb, *words[1:]])
        clauses.append(part)
    return clauses


def server_matches(entry: ServiceEntry, *, slug: str, name: str, repository_url: str) -> bool:
    """Does a catalogue server look like it is for this service (its name, slug or repository says so)?"""
    haystack_tokens = set(re.split(r"[^a-z0-9]+", f"{slug} {name} {repository_url.rsplit('/', 2)[-2:] if repository_url else ''}".lower()))
    joined = f"{slug} {name.lower()} {repository_url.lower()}"
    for token in entry.match:
        if token in haystack_tokens:
            return True
        if len(token) >= 5 and token in joined:
            return True
    return False


class OfflineAnalyzer:
    name = "offline"

    def __init__(self, search=None):
        # search(query, limit) -> list of hits with .server and .score (registry_app search by default).
        if search is None:
            def search(query: str, limit: int):
                return server_search(query=query, limit=limit)

        self.search = search

    def analyze(self, request: str, *, exclude_slugs: set[str] | None = None,
                choices: dict[str, str] | None = None) -> Plan:
        """choices: answers to earlier questions, {need key: chosen slug}."""
        lex = lexicon()
        self._request = request  # the choice rules read it (a request that says "self-hosted" wants that edition)
        clauses = _clauses(request)
        needs: list[tuple[ServiceEntry, str]] = []
        clause_needs: list[list[ServiceEntry]] = []
        for clause in clauses:
            entries = [entry for entry, _, _ in detect_needs(clause)]
            if not entries:  # names no service: a capability need, unless the model does it itself
                capability = capability_entry(clause, _base_verb(clause.split()[0]) if clause else None)
                entries = [capability] if capability else []
            clause_needs.append(entries)
            for entry in entries:
                if entry.key not in {n.key for n, _ in needs}:
                    needs.append((entry, clause))
        # Capabilities a named service in another clause already covers (Gmail in clause 1, "the emails" in 2).
        named = [(e, 0, "") for e, _ in needs if e.kind == "service"]
        needs = [(e, c) for e, c in needs if e.kind == "service" or not _covered((e, 0, ""), named, request)]
        max_servers = int(lex.analysis.get("max_servers", 6))
        chosen: dict[str, ChosenServer] = {}
        need_objs: list[Need] = []
        questions = []
        for entry, clause in needs[:max_servers]:
            if not entry.key.startswith(CAPABILITY_PREFIX):
                need_objs.append(Need(key=entry.key, name=entry.name, kind=entry.kind, phrase=clause))
                server = self._choose(entry, clause, exclude_slugs or set())
            else:
                decision = choose_capability(entry, clause, self.search, exclude_slugs or set(),
                                             answer=(choices or {}).get(entry.key))
                server = decision.chosen
                if decision.question:
                    questions.append(decision.question)
                if server is None and decision.question is None:
                    continue  # nothing in the catalogue does this: the model's own step
                need_objs.append(Need(key=entry.key, name=entry.name, kind=entry.kind, phrase=clause))
            if server is None:
                continue
            if server.slug in chosen:
                chosen[server.slug].need += f", {entry.key}"
                continue
            chosen[server.slug] = server
        servers = list(chosen.values())
        by_need = {need: s for s in servers for need in s.need.split(", ")}
        workflow = self._workflow(clauses, clause_needs, by_need)
        asked = {q.need for q in questions}
        notes = [f"No catalogue server found for {n.name}." for n in need_objs if n.key not in by_need and n.key not in asked]
        return Plan(request=request, servers=servers, workflow=workflow, needs=need_objs, analyzer=self.name,
                    notes=notes, questions=questions)

    def _choose(self, entry: ServiceEntry, clause: str, exclude: set[str]) -> ChosenServer | None:
        limit = int(lexicon().analysis.get("candidates_per_need", 25))
        queries = [f"{entry.name} {entry.query}"]
        if entry.kind != "service":
            # A capability is described by the user's own words too; candidates from both queries compete.
            queries.append(f"{entry.query} {clause[:MAX_QUERY_CHARS]}")
        merged: dict[str, object] = {}
        for query in queries:
            for hit in self.search(query, limit):
                if hit.server.slug not in exclude and (hit.server.slug not in merged or hit.score > merged[hit.server.slug].score):
                    merged[hit.server.slug] = hit
        hits = sorted(merged.values(), key=lambda h: -h.score)
        if not hits:
            return None
        verb = _base_verb(clause.split()[0]) if clause else None
        request = getattr(self, "_request", clause)
        matching = [h for h in hits
                    if server_matches(entry, slug=h.server.slug, name=h.server.name,
                                      repository_url=h.server.repository_url or "")]
        if matching:
            picked = choice.choose(choice.candidates(entry, clause, verb, matching, request=request))
            if picked is not None:
                best, rule = picked
                facts = list(best.facts)
                if not best.launch.runnable_here:
                    facts.append(f"but {best.launch.blocker}")
                why = "named in the request" if entry.kind == "service" else f"best match for {entry.name.lower()}"
                confidence = min(0.97, 0.55 + 0.45 * min(1.0, best.quality() + 0.25 * best.vendor_own
                                                         + 0.15 * best.launch.runnable_here))
                return self._chosen(entry, best.server, confidence,
                                    f"{entry.name} {why}; chosen as {rule}; {', '.join(facts) or 'closest name match'}")
        if entry.kind == "service":
            # Nothing in the catalogue is named for this service: offer the closest match, with low confidence.
            picked = choice.choose(choice.candidates(entry, clause, verb, hits[:1], request=request))
            if picked is None:
                return None
            return self._chosen(entry, picked[0].server, 0.4, f"No server named for {entry.name}; closest catalogue match")
        picked = choice.choose(choice.candidates(entry, clause, verb, hits[:10], request=request))
        if picked is None:
            return None
        best, rule = picked
        return self._chosen(entry, best.server, 0.6, f"Best catalogue match for {entry.name.lower()}; chosen as {rule}")

    @staticmethod
    def _chosen(entry: ServiceEntry, server, confidence: float, reason: str) -> ChosenServer:
        return ChosenServer(need=entry.key, slug=server.slug, name=server.name,
                            repository_url=server.repository_url or "", confidence=round(confidence, 2), reason=reason)

    def _workflow(self, clauses: list[str], clause_needs: list[list[ServiceEntry]], by_need: dict) -> list[WorkflowStep]:
        tools = server_tools({s.slug for s in by_need.values()})
        steps: list[WorkflowStep] = []
        llm_actions = lexicon().llm_actions
        for clause, entries in zip(clauses, clause_needs):
            verb = _base_verb(clause.split()[0]) if clause else None
            action = clause[:1].upper() + clause[1:]
            targets = [by_need[e.key] for e in entries if e.key in by_need]
            need_of = {by_need[e.key].slug: e for e in reversed(entries) if e.key in by_need}
            if not targets:
                if verb in llm_actions or verb is not None:
                    steps.append(WorkflowStep(step=0, action=action))
                continue
            if verb in _STORE_VERBS and steps:
                steps.append(WorkflowStep(step=0, action=f"Format the data for {targets[0].name}"))
            for index, server in enumerate(targets):
                text = action if index == 0 else f"Write the result to {server.name}"
                picked = choose_tool(clause, verb, tools.get(server.slug, []), need=need_of.get(server.slug))
                steps.append(WorkflowStep(step=0, action=text, server=server.slug, tool=picked.tool,
                                          alternative_tool=picked.alternative))
        for number, step in enumerate(steps, start=1):
            step.step = number
        return steps

