"""Course corrections in plain words ("use Discord instead of Slack", "drop Notion", "also log it to Sheets").

A correction edits the request the plan was made from and the plan is analysed again from that text, so what the
user did not mention stays as it was (analysis is deterministic) and collected credentials still apply."""

import re
from dataclasses import dataclass

from agents_app.master.lexicon import ServiceEntry, find_service, lexicon
from agents_app.master.offline import detect_needs

_NAME = r"([a-z0-9][\w .\-]{0,40}?)"
_REPLACE = [
    re.compile(rf"\buse\s+{_NAME}\s+instead\s+of\s+{_NAME}\s*[.!]*$", re.I),  # use X instead of Y
    re.compile(rf"\b{_NAME}\s+instead\s+of\s+{_NAME}\s*[.!]*$", re.I),  # X instead of Y
    re.compile(rf"\binstead\s+of\s+{_NAME},?\s+use\s+{_NAME}\s*[.!]*$", re.I),  # instead of Y, use X  (reversed)
    re.compile(rf"\breplace\s+{_NAME}\s+(?:with|by)\s+{_NAME}\s*[.!]*$", re.I),  # replace Y with X (reversed)
    re.compile(rf"\bswitch\s+(?:from\s+)?{_NAME}\s+to\s+{_NAME}\s*[.!]*$", re.I),  # switch (from) Y to X (reversed)
    re.compile(rf"\bswap\s+{_NAME}\s+(?:for|with)\s+{_NAME}\s*[.!]*$", re.I),  # swap Y for X (reversed)
]
_REVERSED = {2, 3, 4, 5}
_DROP = re.compile(r"\b(?:drop|remove|without|skip|don'?t\s+(?:use|need)|do\s+not\s+(?:use|need)|no\s+more|get\s+rid\s+of|no)\s+(?:the\s+)?([a-z0-9][\w .\-]{0,40}?)(?:\s+(?:step|part|server|integration))?\s*[.!]*$", re.I)
_ADD = re.compile(r"^\s*(?:(?:please\s+)?(?:also|add(?:\s+a\s+step\s+to)?|and\s+also|plus)\s+)(.+)$", re.I)


@dataclass
class Revision:
    request: str
    summary: str


def _aliases_pattern(entry: ServiceEntry) -> re.Pattern:
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(a) for a in entry.aliases) + r")(?![\w-])", re.I)


def revise_request(request: str, message: str) -> Revision | None:
    """The request with the correction applied, or None when the message is not a correction."""
    text = message.strip()
    for index, pattern in enumerate(_REPLACE):
        match = pattern.search(text)
        if not match:
            continue
        new_name, old_name = match.group(1), match.group(2)
        if index in _REVERSED:
            new_name, old_name = old_name, new_name
        new, old = find_service(new_name), find_service(old_name)
        if new and old and old.key != new.key and _aliases_pattern(old).search(request):
            revised = _aliases_pattern(old).sub(new.name, request)
            return Revision(request=revised, summary=f"Switched {old.name} to {new.name}.")
    match = _DROP.search(text)
    if match:
        old = find_service(match.group(1))
        if old and _aliases_pattern(old).search(request):
            return Revision(request=_drop_service(request, old), summary=f"Removed {old.name} from the workflow.")
    match = _ADD.match(text)
    if match and detect_needs(match.group(1)):
        addition = match.group(1).strip().rstrip(".!")
        return Revision(request=f"{request.rstrip(' .!')}, and {addition}", summary=f"Added: {addition}.")
    return None


def _drop_service(request: str, entry: ServiceEntry) -> str:
    """Remove the clauses that mention the service; keep the rest of the request's wording."""
    pieces = re.split(r"(,\s*(?:and\s+)?(?:then\s+)?|\s+and\s+then\s+|\s+then\s+|\s+and\s+|[.;]\s+)", request)
    pattern = _aliases_pattern(entry)
    kept: list[str] = []
    for piece in pieces[::2]:
        if pattern.search(piece):
            continue
        kept.append(piece.strip())
    return ", ".join(p for p in kept if p)


def known_service_names() -> list[str]:
    return [entry.name for entry in lexicon().services]
