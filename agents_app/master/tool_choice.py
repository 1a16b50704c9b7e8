"""Which tool of a server a workflow step calls: the one whose name, description and input schema mean what the
step says, and the runner-up (kept for the agent's instructions, in case the first does not fit at run time).

Two signals, both needed:
- meaning: the cosine between the step's embedding and the tool's ("name: description", the vectors search
  already stores per tool, registry_app.models.ToolEmbedding; computed here for a tool that has none);
- words: the step's verb and the tools that verb stands for ("monitor" -> search/list), its nouns and their
  names in APIs ("email" -> message), and the tool's input schema's property names.
A step that reads (list, get, monitor...) never prefers a tool that writes (commit, create, send...), and the
other way round: "list the recent commits" is git_log, not git_commit, although "commit" is in both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from agents_app.master.lexicon import ServiceEntry
from registry_app.embeddings import EmbeddingError, embed_queries, get_provider
from registry_app.models import ServerTool, ToolEmbedding
from registry_app.search_index import build_tool_document

TOOL_SYNONYMS = {
    "send": {"send", "post", "message", "notify", "chat", "reply", "publish"},
    "notify": {"send", "post", "message", "notify", "chat"},
    "post": {"send", "post", "message", "publish", "create"},
    "read": {"read", "get", "list", "fetch", "search", "query", "retrieve"},
    "monitor": {"search", "list", "get", "read", "watch", "fetch", "query"},
    "watch": {"search", "list", "get", "read", "watch", "fetch"},
    "check": {"search", "list", "get", "read", "fetch", "query"},
    "find": {"search", "find", "query", "list", "get"},
    "search": {"search", "find", "query", "list"},
    "list": {"list", "log", "show", "history", "get", "search"},
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
    "download": {"download", "get", "fetch", "read", "attachment"},
    "query": {"query", "sql", "execute", "read", "select"},
    "schedule": {"create", "event", "schedule", "book"},
    "commit": {"commit", "add", "create"},
    "remind": {"create", "event", "task", "reminder"},
}
# Verbs that consume data the model then works on: read-type tools serve them.
for _verb in ("summarize", "summarise", "analyze", "analyse", "review", "extract", "compare", "track", "collect"):
    TOOL_SYNONYMS[_verb] = {"read", "get", "list", "fetch", "search", "log", "show", "history", "query"}
# What a step's nouns are called in tool names: an e-mail is a "message" in most mail APIs.
NOUN_SYNONYMS = {
    "email": {"message", "mail"},
    "mail": {"message", "email"},
    "notification": {"message"},
    "commit": {"log", "history"},
}
# Watching for things means listing or searching them, not fetching one known item by its ID.
PREFERRED = {verb: {"search", "list", "watch", "find", "query"} for verb in ("monitor", "watch", "check", "find", "search")}
# Words that say nothing about which tool fits ("for", "my" are in many tool descriptions).
STOPWORDS = {"a", "an", "the", "my", "our", "your", "their", "for", "to", "of", "in", "on", "at", "and", "or", "with",
             "from", "by", "it", "them", "this", "that", "these", "each", "every", "me", "us", "into", "via", "through",
             "all", "any", "some"}
# A step either reads (looks at what exists) or writes (changes something); tools are named after what they do.
READ_VERBS = {"read", "get", "list", "fetch", "find", "search", "look", "monitor", "watch", "check", "show", "query",
              "scan", "track", "collect", "gather", "pull", "download", "retrieve", "summarize", "summarise", "review",
              "analyze", "analyse", "compare", "extract", "receive", "listen", "tell"}
WRITE_VERBS = {"create", "add", "insert", "append", "write", "store", "save", "send", "post", "notify", "update",
               "delete", "remove", "commit", "push", "merge", "upload", "publish", "set", "edit", "patch", "put",
               "reply", "move", "archive", "label", "assign", "close", "open", "book", "schedule", "log", "file",
               "message", "alert", "ping", "tweet", "forward", "reset", "checkout", "init", "clone", "stage", "drop",
               "kill", "execute", "run", "deploy"}
READ_TOOL_WORDS = {"get", "list", "read", "search", "find", "fetch", "show", "query", "log", "history", "status",
                   "diff", "describe", "view", "lookup", "download", "retrieve", "current", "info", "count"}
# Storing data adds an item to a collection; a tool that creates the collection itself (a database, a folder, a
# channel) fits only a step that names it: "store it in Notion" is API-post-page, not API-create-a-database.
CONTAINER_WORDS = {"database", "table", "collection", "folder", "directory", "channel", "repository", "repo", "project",
                   "workspace", "bucket", "index", "schema", "spreadsheet", "calendar", "board", "space", "team"}
# Meaning and words count alike: a small embedding model reads "list filters" as nearer to "monitor for invoices"
# than "list messages"; the words of what the service is about (a mail service's items are messages) set it right.
MEANING_WEIGHT, WORDS_WEIGHT, MISMATCH_PENALTY = 1.0, 1.0, 0.5
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class ToolOption:
    name: str
    description: str = ""
    schema_words: frozenset[str] = frozenset()  # property names of its input schema
    vector: np.ndarray | None = None  # its stored embedding, if any


@dataclass(frozen=True)
class ToolChoice:
    tool: str | None
    alternative: str | None
    fit: float  # how well the chosen tool means the step, by cosine (0 when no tool or no vectors)


def tokens(text: str) -> set[str]:
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in _WORD.findall(text.lower())}


def _schema_words(schema: object) -> frozenset[str]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return frozenset()
    return frozenset(w for key in properties if isinstance(key, str) for w in tokens(key.replace("_", " ")))


def server_tools(slugs: set[str]) -> dict[str, list[ToolOption]]:
    """Each server's tools with their stored vectors of the current embedding model (two queries)."""
    provider = get_provider()
    rows = list(ServerTool.objects.filter(server__slug__in=slugs).values_list(
        "id", "server__slug", "name", "description", "input_schema"))
    vectors = dict(ToolEmbedding.objects.filter(tool_id__in=[r[0] for r in rows], model=provider.name)
                   .values_list("tool_id", "embedding"))
    tools: dict[str, list[ToolOption]] = {}
    for tool_id, slug, name, description, schema in rows:
        vector = vectors.get(tool_id)
        tools.setdefault(slug, []).append(ToolOption(
            name=name, description=description or "", schema_words=_schema_words(schema),
            vector=None if vector is None else np.asarray(vector, dtype=np.float32)))
    return tools


def _meanings(step: str, tools: list[ToolOption]) -> np.ndarray | None:
    """Cosine of the step with each tool, or None when the embedding model is unavailable."""
    if not tools:
        return None
    provider = get_provider()
    missing = [t for t in tools if t.vector is None or len(t.vector) != provider.dims]
    try:
        texts = [step] + [build_tool_document(tool_name=t.name, description=t.description) for t in missing]
        vectors = embed_queries(provider, texts)
    except EmbeddingError:
        return None
    computed = {t.name: v for t, v in zip(missing, vectors[1:])}
    matrix = np.stack([computed.get(t.name) if t.name in computed else t.vector for t in tools])
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return matrix @ vectors[0]


def _acts(verb: str | None) -> str | None:
    if verb in READ_VERBS:
        return "read"
    if verb in WRITE_VERBS:
        return "write"
    return None


def _tool_acts(name_words: list[str]) -> str | None:
    """What a tool does, from the first verb of its name ("git_log" -> read, "slack_post_message" -> write)."""
    for word in name_words:
        if word in READ_TOOL_WORDS:
            return "read"
        if word in WRITE_VERBS:
            return "write"
    return None


def _word_score(wanted: set[str], verb: str | None, context: set[str], tool: ToolOption) -> float:
    name_tokens = tokens(tool.name.replace("_", " ").replace("-", " "))
    desc_tokens = tokens(tool.description[:300])
    score = 2.0 * len(wanted & name_tokens) + 0.5 * len(wanted & desc_tokens) + 0.5 * len(wanted & tool.schema_words)
    score += 1.0 * len(context & name_tokens)
    if verb and name_tokens & TOOL_SYNONYMS.get(verb, {verb}):
        score += 2.0
    if verb and name_tokens & PREFERRED.get(verb, set()):
        score += 1.0
    return score


def choose_tool(step: str, verb: str | None, tools: list[ToolOption], *,
                need: ServiceEntry | None = None) -> ToolChoice:
    """The tool that fits the step best by meaning and words, and the runner-up. The service's own name says
    nothing about which of its tools fits ("... of a Gmail user"); what the service is about (the lexicon's query)
    breaks ties with little weight."""
    if not tools:
        return ToolChoice(None, None, 0.0)
    own_name = set(need.match) if need and need.kind == "service" else set()
    wanted = tokens(step) - STOPWORDS - own_name
    for noun in list(wanted):
        wanted |= NOUN_SYNONYMS.get(noun, set())
    if verb:
        wanted |= TOOL_SYNONYMS.get(verb, {verb})
    context = (tokens(need.query) - wanted - own_name) if need else set()
    words = np.array([_word_score(wanted, verb, context, t) for t in tools], dtype=np.float32)
    words = words / max(float(words.max()), 1.0)
    # The service's own name is in the step and in all its tools' descriptions: it only blurs their meanings.
    plain = " ".join(w for w in step.split() if w.lower().strip(".,;:!?'\"") not in own_name) or step
    meanings = _meanings(plain, tools)
    step_acts = _acts(verb)
    step_words = tokens(step)
    scores = []
    for i, tool in enumerate(tools):
        name_words = _WORD.findall(tool.name.lower().replace("_", " ").replace("-", " "))
        mismatch = step_acts is not None and _tool_acts(name_words) not in (None, step_acts)
        if step_acts == "write" and _tool_acts(name_words) == "write" and (set(name_words) & CONTAINER_WORDS) - step_words:
            mismatch = True
        meaning = float(meanings[i]) if meanings is not None else 0.0
        scores.append(MEANING_WEIGHT * meaning + WORDS_WEIGHT * float(words[i]) - MISMATCH_PENALTY * mismatch)
    order = sorted(range(len(tools)), key=lambda i: (-scores[i], tools[i].name))
    if meanings is None and words[order[0]] <= 0:
        return ToolChoice(None, None, 0.0)  # nothing to go by: naming a tool would be a guess
    best = order[0]
    alternative = tools[order[1]].name if len(order) > 1 else None
    return ToolChoice(tools[best].name, alternative, float(meanings[best]) if meanings is not None else 0.0)


def can_do(verb: str | None, tools: list[ToolOption]) -> bool | None:
    """Can one of a server's tools do a step with this verb: a tool that reads for a step that reads, one that
    writes for a step that writes (None when its tools are unknown). An outbound-only mail service (its one tool
    sends) cannot "download the attachments of new emails"."""
    if not tools:
        return None
    step_acts = _acts(verb)
    if step_acts is None:
        return True
    return any(_tool_acts(_WORD.findall(t.name.lower().replace("_", " ").replace("-", " "))) in (None, step_acts)
               for t in tools)
