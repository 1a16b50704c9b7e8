"""The offline analyzer: request -> Plan with no model, deterministically, from the catalogue.

Retrieval + rules: the lexicon (config/config.json) names the services and capabilities a request needs;
registry_app search finds candidate servers for each; a server is chosen per need (for a named service, the
best-ranked server whose name, slug or repository names that service); the request's clauses become ordered
workflow steps, each with the server and the catalogue tool that fits its verb best.
"""

import re

from agents_app.master.launchability import Launchability, assess
from agents_app.master.lexicon import ServiceEntry, lexicon
from agents_app.master.needs import CAPABILITY_PREFIX, capability_entry, choose_capability, covered as _covered, detect_needs
from agents_app.master.plan import ChosenServer, Need, Plan, WorkflowStep

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
_TOOL_SYNONYMS = {
    "send": {"send", "post", "message", "notify", "chat", "reply", "publish"},
    "notify": {"send", "post", "message", "notify", "chat"},
    "post": {"send", "post", "message", "publish", "create"},
    "read": {"read", "get", "list", "fetch", "search", "query", "retrieve"},
    "monitor": {"search", "list", "get", "read", "watch", "fetch", "query"},
    "watch": {"search", "list", "get", "read", "watch", "fetch"},
    "check": {"search", "list", "get", "read", "fetch", "query"},
    "find": {"search", "find", "query", "list", "get"},
    "search": {"search", "find", "query", "list"},
    # Storing is writing something new: "update" tools (edit what exists) come from the verb "update".
    "store": {"create", "add", "insert", "append", "write", "page", "save"},
    "save": {"create", "add", "insert", "append", "write", "save", "upload"},
    "create": {"create", "add", "insert", "new", "page"},
    "add": {"create", "add", "insert", "append"},
    "log": {"create", "add", "append", "insert", "write"},
    "file": {"create", "add", "upload", "save", "move"},
    "upload": {"upload", "create", "put", "write"},
    "update": {"update", "edit", "patch", "set"},
    "get": {"get", "read", "list", "fetch", "current"},
    "tell": {"get", "current", "convert"},
    "scrape": {"scrape", "fetch", "crawl", "extract", "get"},
    "fetch": {"fetch", "get", "read", "scrape"},
    "query": {"query", "sql", "execute", "read", "select"},
    "schedule": {"create", "event", "schedule", "book"},
    "commit": {"commit", "add", "create"},
    "remind": {"create", "event", "task", "reminder"},
}
# What a clause's nouns are called in tool names: an e-mail is a "message" in most mail APIs.
_NOUN_SYNONYMS = {
    "email": {"message", "mail"},
    "mail": {"message", "email"},
    "notification": {"message"},
}
# Words that say nothing about which tool fits ("for", "my" are in many tool descriptions).
_STOPWORDS = {"a", "an", "the", "my", "our", "your", "their", "for", "to", "of", "in", "on", "at", "and", "or",
              "with", "from", "by", "it", "them", "this", "that", "these", "each", "every", "me", "us", "into",
              "via", "through", "all", "any", "some"}
# Watching for things means listing or searching them, not fetching one known item by its ID.
_PREFERRED = {verb: {"search", "list", "watch", "find", "query"}
              for verb in ("monitor", "watch", "check", "find", "search")}
# Verbs that consume data the model then works on: read-type tools serve them.
for _verb in ("summarize", "summarise", "analyze", "analyse", "review", "extract", "compare", "track", "collect"):
    _TOOL_SYNONYMS[_verb] = {"read", "get", "list", "fetch", "search", "log", "show", "history", "query"}
_WORD = re.compile(r"[a-z0-9]+")
_REFERENCE_REPOSITORIES = ("https://github.com/modelcontextprotocol/",)


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


def _tokens(text: str) -> set[str]:
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in _WORD.findall(text.lower())}


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


def _pick_tool(clause: str, verb: str | None, tools: list[tuple[str, str]], *,
               need: ServiceEntry | None = None) -> str | None:
    """The tool that fits the clause best: its verb (and the tools that verb stands for), its words, and, with
    little weight (it breaks ties), what the service is about (the lexicon's query: "gmail email ... messages").
    The service's own name says nothing about which of its tools fits ("... of a Gmail user")."""
    if not tools:
        return None
    own_name = set(need.match) if need and need.kind == "service" else set()
    wanted = _tokens(clause) - _STOPWORDS - own_name
    for noun in list(wanted):
        wanted |= _NOUN_SYNONYMS.get(noun, set())
    if verb:
        wanted |= _TOOL_SYNONYMS.get(verb, {verb})
    context = (_tokens(need.query) - wanted - own_name) if need else set()
    best, best_score = None, 0.0
    for name, description in tools:
        name_tokens = _tokens(name.replace("_", " ").replace("-", " "))
        desc_tokens = _tokens(description[:300])
        score = 2.0 * len(wanted & name_tokens) + 0.5 * len(wanted & desc_tokens) + 0.25 * len(context & name_tokens)
        if verb and name_tokens & _TOOL_SYNONYMS.get(verb, {verb}):
            score += 2.0
        if verb and name_tokens & _PREFERRED.get(verb, set()):
            score += 1.0
        if score > best_score:
            best, best_score = name, score
    return best


class OfflineAnalyzer:
    name = "offline"

    def __init__(self, search=None):
        # search(query, limit) -> list of hits with .server and .score (registry_app search by default).
        if search is None:
            from registry_app.selectors import server_search

            def search(query: str, limit: int):
                return server_search(query=query, limit=limit)

        self.search = search

    def analyze(self, request: str, *, exclude_slugs: set[str] | None = None,
                choices: dict[str, str] | None = None) -> Plan:
        """choices: answers to earlier questions, {need key: chosen slug}."""
        lex = lexicon()
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
            queries.append(f"{entry.query} {clause}")
        merged: dict[str, object] = {}
        for query in queries:
            for hit in self.search(query, limit):
                if hit.server.slug not in exclude and (hit.server.slug not in merged or hit.score > merged[hit.server.slug].score):
                    merged[hit.server.slug] = hit
        hits = sorted(merged.values(), key=lambda h: -h.score)
        if not hits:
            return None
        matching = [h for h in hits
                    if server_matches(entry, slug=h.server.slug, name=h.server.name,
                                      repository_url=h.server.repository_url or "")]
        if matching:
            scored = _buildability(matching)
            # A server we cannot launch here (or only after an OAuth sign-in the user cannot do for us) cannot
            # become an agent: those that can come first, then the best score.
            best, total, facts, launch = max(scored, key=lambda item: (item[3].runnable_here, item[1]))
            server = best.server
            confidence = min(0.97, 0.55 + 0.45 * total)
            if not launch.runnable_here:
                facts = [*facts, f"but {launch.blocker}"]
            why = "named in the request" if entry.kind == "service" else f"best match for {entry.name.lower()}"
            return ChosenServer(
                need=entry.key, slug=server.slug, name=server.name, repository_url=server.repository_url or "",
                confidence=round(confidence, 2), reason=f"{entry.name} {why}; {', '.join(facts) or 'closest name match'}",
            )
        hit = hits[0]
        if entry.kind == "service":
            # Nothing in the catalogue is named for this service: offer the closest match, with low confidence.
            confidence, reason = 0.4, f"No server named for {entry.name}; closest catalogue match"
        else:
            confidence, reason = 0.6, f"Best catalogue match for {entry.name.lower()}"
        return ChosenServer(
            need=entry.key, slug=hit.server.slug, name=hit.server.name,
            repository_url=hit.server.repository_url or "", confidence=confidence, reason=reason,
        )

    def _workflow(self, clauses: list[str], clause_needs: list[list[ServiceEntry]], by_need: dict) -> list[WorkflowStep]:
        from registry_app.models import ServerTool

        slugs = {s.slug for s in by_need.values()}
        tools: dict[str, list[tuple[str, str]]] = {}
        for slug, name, description in ServerTool.objects.filter(server__slug__in=slugs).values_list(
            "server__slug", "name", "description"
        ):
            tools.setdefault(slug, []).append((name, description or ""))
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
                steps.append(WorkflowStep(step=0, action=text, server=server.slug,
                                          tool=_pick_tool(clause, verb, tools.get(server.slug, []),
                                                          need=need_of.get(server.slug))))
        for number, step in enumerate(steps, start=1):
            step.step = number
        return steps


def _buildability(hits: list) -> list[tuple[object, float, list[str], Launchability]]:
    """Score the catalogue servers that match a service for building an agent, 0..1: relevance to the request
    plus what makes a server usable without guesswork — published by the vendor or checked by staff, declared
    credentials (we can ask for them), known tools (the workflow can name them), and a launch recipe that runs
    here with credentials the user can get by themselves (see agents_app.master.launchability)."""
    from django.db.models import Count

    from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer

    ids = [h.server.id for h in hits]
    n_tools = dict(
        McpServer.objects.filter(id__in=ids).annotate(n=Count("tools")).values_list("id", "n")
    )
    kinds: dict[int, set[str]] = {}
    for server_id, kind in LaunchRecipe.objects.filter(server_id__in=ids).values_list("server_id", "kind"):
        kinds.setdefault(server_id, set()).add(kind)
    credentials: dict[int, list[dict]] = {}
    for row in CredentialRequirement.objects.filter(server_id__in=ids).values(
        "server_id", "key", "location", "description", "instructions", "required", "secret", "default"
    ):
        credentials.setdefault(row["server_id"], []).append(row)
    scored = []
    # Relevance by rank, not raw score: fused scores jump by name boosts, and a big jump between two servers
    # that are both named for the service says little about which one to build with.
    for rank, hit in enumerate(sorted(hits, key=lambda h: -h.score)):
        server = hit.server
        tools, creds = n_tools.get(server.id, 0), len(credentials.get(server.id, []))
        launch = assess(kinds.get(server.id, set()), credentials.get(server.id, []))
        # The MCP project's own reference servers (time, git, fetch, filesystem...) count as official.
        official = server.official or (server.repository_url or "").startswith(_REFERENCE_REPOSITORIES)
        facts = []
        if official:
            facts.append("official")
        if server.verified:
            facts.append("verified")
        if tools:
            facts.append(f"{tools} known tools")
        if creds:
            facts.append("declared credentials")
        if launch.runnable_here:
            facts.append("runnable launch recipe")
        quality = (
            0.22 * official + 0.15 * server.verified + 0.25 * min(1.0, server.popularity)
            + 0.15 * min(1.0, tools / 4) + 0.12 * (creds > 0)
            + 0.12 * launch.runnable_here
        )
        relevance = 1.0 / (1.0 + 0.08 * rank)
        scored.append((hit, min(1.0, 0.3 * relevance + quality), facts, launch))
    return scored
