"""Per-need candidate lists for the LLM analyzer: the same needs and catalogue candidates the offline analyzer
works from, so Claude chooses among servers the catalogue offers (or asks the user) instead of guessing."""

from agents_app.master.needs import capability_candidates, capability_entry, detect_needs
from agents_app.master.offline import _base_verb, _clauses
from agents_app.master.plan import Question

MAX_PER_NEED = 5


def need_candidates(request: str, search, exclude: set[str]) -> list[dict]:
    """[{"key", "kind", "phrase", "candidates": [{"slug", "name", "fit"?}]}] for each need of the request."""
    needs: list[dict] = []
    seen: set[str] = set()
    for clause in _clauses(request):
        entries = [entry for entry, _, _ in detect_needs(clause)]
        if not entries:
            capability = capability_entry(clause, _base_verb(clause.split()[0]) if clause else None)
            entries = [capability] if capability else []
        for entry in entries:
            if entry.key in seen:
                continue
            seen.add(entry.key)
            if entry.kind == "capability" and not entry.aliases:  # a described capability: measured fit
                ranked = capability_candidates(clause, search, exclude)[:MAX_PER_NEED]
                candidates = [{"slug": s.slug, "name": s.name, "fit": round(fit, 2)} for s, fit, _ in ranked]
            else:
                hits = search(f"{entry.name} {entry.query}", MAX_PER_NEED + len(exclude))
                candidates = [{"slug": h.server.slug, "name": h.server.name} for h in hits
                              if h.server.slug not in exclude][:MAX_PER_NEED]
            needs.append({"key": entry.key, "kind": entry.kind, "phrase": clause, "candidates": candidates})
    return needs


def questions_from_answer(raw, *, known: dict[str, str]) -> tuple[list[Question], list[str]]:
    """The model's "questions", validated: candidates are active catalogue slugs (known: slug -> name)."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], ['"questions" must be a list.']
    questions, problems = [], []
    for index, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not item["question"].strip():
            problems.append(f'questions[{index}] must be an object with a "question" text.')
            continue
        slugs = [s for s in item.get("candidates") or [] if isinstance(s, str)]
        unknown = [s for s in slugs if s not in known]
        if unknown or len(slugs) < 2:
            problems.append(f'questions[{index}]: "candidates" must list at least two catalogue slugs'
                            + (f' ({", ".join(unknown)} are not)' if unknown else "") + ".")
            continue
        questions.append(Question(need=str(item.get("need") or "")[:200], text=item["question"].strip()[:500],
                                  candidates=[{"slug": s, "name": known[s], "reason": ""} for s in slugs]))
    return questions, problems
