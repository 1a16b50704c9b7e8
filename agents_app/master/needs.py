"""What a request needs: the services it names and the capabilities it describes, and capability choices.

A clause names a service when the lexicon (config/config.json: curated aliases such as "my inbox" -> Gmail, and
capabilities such as "web search") or the catalogue's own vocabulary (registry_app.vocabulary: every service a
catalogue server is for, e.g. Harvest, Contentful, Mattermost) finds it; the lexicon wins where both match.

A clause that names nothing and is not something the model does itself (llm_only_actions: summarise,
translate...) is a capability need ("find a hotel in Barcelona"). Its candidates are the catalogue's best servers
for the clause; each is measured by registry_app.fit (similarity of the clause to the server and its nearest tool,
and of the clause's leading verb when that verb alone names the capability: "transcribe").
The best is chosen when its fit reaches `capability_min_fit`; below that (weak evidence), or when several services
that each need the user's own account fit about equally ("Spotify or Last.fm?"), the plan asks one question naming
the candidates. Under `capability_floor` nothing in the catalogue serves the clause and no need is made.
Thresholds live in config.json's `analysis` and were calibrated with benchmarks/calibrate_capabilities.py.
"""

import re
from dataclasses import dataclass

from django.db.models import Q
from wordfreq import zipf_frequency

from agents_app.master.lexicon import ServiceEntry, lexicon
from agents_app.master.plan import ChosenServer, Question
from registry_app.fit import capability_fit
from registry_app.models import CredentialRequirement, McpServer
from registry_app.standing import is_test_listing, retired
from registry_app.vocabulary import COMMON_ZIPF, Mention, catalogue_mentions

CAPABILITY_PREFIX = "capability:"
_WORD = re.compile(r"[a-z0-9]+")
# Words that carry no capability: a clause of only these ("do it", "handle the rest") is not a need.
_EMPTY_WORDS = {
    "a", "an", "the", "my", "our", "your", "their", "for", "to", "of", "in", "on", "at", "and", "or", "with", "from",
    "by", "it", "them", "this", "that", "these", "those", "each", "every", "me", "us", "all", "any", "some", "do",
    "make", "handle", "rest", "thing", "things", "stuff", "please", "then", "also", "up", "out", "too", "is", "be",
}

# Openings of a message that ask for no action (the analyzer's verb list knows the usual actions; "show", "play",
# "transcribe" are actions it does not list, so an unknown first word is not enough to rule a clause out).
_NOT_ACTIONS = {
    "hello", "hi", "hey", "thanks", "thank", "ok", "okay", "yes", "no", "sure", "great", "good", "cool", "nice",
    "bye", "goodbye", "welcome", "sorry", "i", "we", "you", "he",
    "she", "they", "there", "here", "hmm", "wow", "lol",
}


@dataclass(frozen=True)
class CapabilityDecision:
    chosen: ChosenServer | None
    question: Question | None


def detect_needs(text: str) -> list[tuple[ServiceEntry, int, str]]:
    """Services and capabilities the text names, in order of first mention: (entry, position, matched words).
    A capability named in the same breath as a named service (Gmail ... emails) is covered by that service."""
    lowered = text.lower()
    found: dict[str, tuple[ServiceEntry, int, str]] = {}
    spans: list[tuple[int, int, str]] = []
    for entry in lexicon().services:
        for match in entry.pattern.finditer(lowered):
            start, end = match.span()
            # A longer alias of another entry already covering these characters wins ("google sheets" over "sheets").
            if any(s <= start and end <= e and k != entry.key for s, e, k in spans):
                continue
            spans.append((start, end, entry.key))
            if entry.key not in found:
                found[entry.key] = (entry, start, match.group(0))
    for mention in catalogue_mentions(text):
        if any(s < mention.end and mention.start < e for s, e, _ in spans) or _is_leading_verb(text, mention):
            continue
        entry = vocabulary_entry(mention)
        if entry.key not in found:
            found[entry.key] = (entry, mention.start, mention.written)
    ordered = sorted(found.values(), key=lambda item: item[1])
    named = [item for item in ordered if item[0].kind == "service"]
    if named:
        ordered = [item for item in ordered if item[0].kind == "service" or not covered(item, named, lowered)]
    return ordered


def _is_leading_verb(text: str, mention: Mention) -> bool:
    # "transcribe this podcast" is an action even though a server is called "transcribe".
    return not text[: mention.start].strip() and " " not in mention.written


def vocabulary_entry(mention: Mention) -> ServiceEntry:
    """A catalogue service named in a request, shaped like a lexicon entry (its words must be in the server's
    name, slug or repository: "apple-notes", "apple notes", "applenotes")."""
    words = mention.service.words
    spellings = tuple(dict.fromkeys((" ".join(words), "-".join(words), "".join(words))))
    return ServiceEntry(
        key=mention.service.key, name=mention.name, kind="service", aliases=(mention.service.phrase,),
        match=spellings, query=mention.service.phrase,
        pattern=re.compile(r"(?<![\w-])" + r"[\s.-]*".join(re.escape(w) for w in words) + r"s?(?![\w-])"),
    )


def covered(capability: tuple[ServiceEntry, int, str], named: list, text: str) -> bool:
    entry = capability[0]
    for service, _, _ in named:
        # Gmail covers "emails", GitHub covers "git repository", a named search engine covers "web search".
        if any(m in service.key or service.key in m for m in entry.match) or set(entry.match) & set(service.match):
            return True
        if entry.key == "email" and service.key in {"gmail", "outlook", "sendgrid", "mailchimp"}:
            return True
        if entry.key == "git" and service.key in {"github", "gitlab", "bitbucket"}:
            return True
    return False


# --- capability needs ---------------------------------------------------------------------------------------

# A capability is said in a sentence; a clause of pages (a pasted document) is searched by its start.
MAX_QUERY_CHARS = 400


def capability_entry(clause: str, verb: str | None) -> ServiceEntry | None:
    """The clause as a capability need, or None: it names something the model does itself, or nothing at all."""
    if verb is not None and verb in lexicon().llm_actions:
        return None  # something the model does itself
    words = [w for w in _WORD.findall(clause.lower()) if w not in _EMPTY_WORDS]
    if verb is None and (not words or words[0] in _NOT_ACTIONS or not clause[:1].isalpha()):
        return None  # small talk ("hello there", "thanks!") asks for nothing
    if len(words) < 2:
        return None  # a bare verb ("check it") describes no capability
    key = CAPABILITY_PREFIX + "-".join(words[:8])
    name = clause[:1].upper() + clause[1:]
    return ServiceEntry(key=key, name=name, kind="capability", aliases=(), match=(), query=clause[:MAX_QUERY_CHARS],
                        pattern=re.compile(r"(?!)"))


def _settings() -> dict:
    analysis = lexicon().analysis
    return {
        "min_fit": float(analysis.get("capability_min_fit", 0.42)),
        "floor": float(analysis.get("capability_floor", 0.35)),
        "tie_margin": float(analysis.get("capability_tie_margin", 0.03)),
        "candidates": int(analysis.get("capability_candidates", 8)),
        "asked": int(analysis.get("capability_question_candidates", 3)),
    }


def capability_candidates(clause: str, search, exclude: set[str]) -> list[tuple[object, float, str]]:
    """The catalogue's candidates for a capability, best fit first: (server, fit, nearest tool)."""
    conf = _settings()
    # Retired servers are never chosen, and a test or demo listing comes after every real one, as for named needs.
    hits = [h for h in search(clause[:MAX_QUERY_CHARS], conf["candidates"])
            if h.server.slug not in exclude
            and not retired(status=h.server.status, repository_url=h.server.repository_url)]
    # A listing with neither known tools nor a way to start it cannot become an agent: never a candidate.
    usable = set(McpServer.objects.filter(id__in=[h.server.id for h in hits])
                 .filter(Q(tools__isnull=False) | Q(launch_recipes__isnull=False)).values_list("id", flat=True))
    hits = [h for h in hits if h.server.id in usable]
    fits = capability_fit(clause[:MAX_QUERY_CHARS], [h.server.id for h in hits])
    action = specific_action(clause)
    acts = capability_fit(action, [h.server.id for h in hits]) if action else {}
    ranked = [(h.server, max(fits[h.server.id].score, acts[h.server.id].score if h.server.id in acts else -1.0),
               fits[h.server.id].tool_name) for h in hits if h.server.id in fits]
    return sorted(ranked, key=lambda item: (is_test_listing(slug=item[0].slug, name=item[0].name), -item[1]))


def specific_action(clause: str) -> str | None:
    """The clause's leading verb when it names a capability by itself ("transcribe", "resize", "shorten"): a word
    less common than everyday words (registry_app.vocabulary.COMMON_ZIPF). "Transcribe this podcast episode" is
    about transcribing; the whole clause reads as near to servers about podcasts as to servers that transcribe, the
    verb alone tells them apart. Everyday verbs (get, find, show, check) say nothing of the capability."""
    words = _WORD.findall(clause.lower())
    if not words or words[0] in _EMPTY_WORDS or words[0] in _NOT_ACTIONS:
        return None
    return words[0] if zipf_frequency(words[0], "en") < COMMON_ZIPF else None


def _needs_account(server_ids: list[int]) -> set[int]:
    return set(CredentialRequirement.objects.filter(server_id__in=server_ids, required=True, secret=True)
               .values_list("server_id", flat=True))


def choose_capability(entry: ServiceEntry, clause: str, search, exclude: set[str],
                      answer: str | None = None) -> CapabilityDecision:
    """The server for a capability need, or a question when the evidence does not decide (see the docstring)."""
    conf = _settings()
    ranked = capability_candidates(clause, search, exclude)
    if answer:
        for server, fit, _ in ranked:
            if server.slug == answer:
                return CapabilityDecision(_chosen(entry, server, fit, "your choice"), None)
        server = McpServer.objects.filter(slug=answer, status=McpServer.Status.ACTIVE).first()
        if server is not None and answer not in exclude:
            return CapabilityDecision(_chosen(entry, server, 0.9, "your choice"), None)
    if not ranked or ranked[0][1] < conf["floor"]:
        return CapabilityDecision(None, None)
    best, best_fit, tool = ranked[0]
    # Rivals are candidates as good as the best, of its own standing (a test listing ranked after it is no rival).
    tier = is_test_listing(slug=best.slug, name=best.name)
    close = [item for item in ranked if item[1] >= best_fit - conf["tie_margin"]
             and is_test_listing(slug=item[0].slug, name=item[0].name) == tier]
    if best_fit >= conf["min_fit"]:
        accounts = _needs_account([server.id for server, _, _ in close]) if len(close) > 1 else set()
        rivals = [item for item in close if item[0].id in accounts]
        if len(rivals) < 2 or best.id not in accounts:
            return CapabilityDecision(_chosen(entry, best, best_fit, f"fits best ({tool or 'description'})"), None)
        asked = rivals[: conf["asked"]]
        text = (f"Which service do you use to {clause}: " + _either(asked) + "? (answer with its name or number)")
    else:
        asked = ranked[: conf["asked"]]
        text = (f"I am not sure which catalogue server should {clause}. Is it " + _either(asked)
                + "? (answer with its name or number)")
    candidates = [{"slug": s.slug, "name": s.name, "reason": f"fit {fit:.2f}" + (f", tool {t}" if t else "")}
                  for s, fit, t in asked]
    return CapabilityDecision(None, Question(need=entry.key, text=text, candidates=candidates))


def _either(items: list) -> str:
    names = [f"{n}. {server.name} ({server.slug})" for n, (server, _, _) in enumerate(items, start=1)]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def _chosen(entry: ServiceEntry, server, fit: float, why: str) -> ChosenServer:
    return ChosenServer(
        need=entry.key, slug=server.slug, name=server.name, repository_url=server.repository_url or "",
        confidence=round(min(0.95, max(0.4, fit + 0.3)), 2), reason=f"Capability \"{entry.name}\": {why}",
    )


def resolve_answer(question: dict, message: str) -> str | None:
    """The candidate's slug a user's answer picks ("2", "Spotify", "spotify-mcp"), or None."""
    text = message.strip().lower().strip(" .!?\"'")
    candidates = question.get("candidates") or []
    number = re.fullmatch(r"(?:#|no\.?\s*|number\s*)?(\d{1,2})", text)
    if number and 1 <= int(number.group(1)) <= len(candidates):
        return candidates[int(number.group(1)) - 1]["slug"]
    for candidate in candidates:
        if text in {candidate["slug"].lower(), candidate["name"].lower()}:
            return candidate["slug"]
    words = set(_WORD.findall(text))
    matching = [c for c in candidates
                if set(_WORD.findall(c["name"].lower())) & words - _EMPTY_WORDS - {"use", "the", "one", "i"}
                or c["slug"].lower() in text]
    return matching[0]["slug"] if len(matching) == 1 else None
