"""The planner benchmark's request set is well-formed: big and varied enough to mean something, every need a
compiling pattern that some bundled catalogue server can satisfy. Reads files only; the planner is not run."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "benchmarks" / "data" / "planner_requests.json"


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads(DATA.read_text())


def test_header_says_how_it_was_written(data):
    for key in ("about", "written", "method", "tuned_on", "matching"):
        assert data.get(key), f"header field {key!r} missing"


def test_size_and_spread(data):
    requests = data["requests"]
    assert len(requests) >= 200
    assert len({need["need"] for item in requests for need in item["needs"]}) >= 120
    assert len({item["id"] for item in requests}) == len(requests)
    assert len({item["request"].strip().lower() for item in requests}) == len(requests)
    capability_only = [item for item in requests if item["capability_only"]]
    assert len(capability_only) * 3 >= len(requests)


def test_every_request_is_well_formed(data):
    for item in data["requests"]:
        assert isinstance(item["request"], str) and item["request"].strip(), item
        assert item["needs"], item["id"]
        for need in item["needs"]:
            assert set(need) == {"need", "kind", "pattern", "question_ok"}, item["id"]
            assert need["kind"] in ("service", "capability"), item["id"]
            assert isinstance(need["question_ok"], bool), item["id"]
            re.compile(need["pattern"], re.IGNORECASE)
        # A request marked capability-only asks for no named service.
        assert item["capability_only"] == all(need["kind"] == "capability" for need in item["needs"]), item["id"]


def test_every_pattern_matches_some_catalogue_server(data):
    servers = json.loads((ROOT / "config" / "servers.json").read_text())["servers"]
    identities = "\n".join(
        f"{s['slug']}\n{s['name']}\n{re.sub(r'^[a-z]+://[^/]+/', '', s.get('repository_url') or '')}" for s in servers
    )
    patterns = {need["pattern"] for item in data["requests"] for need in item["needs"]}
    # Patterns are searched line by line: ^ and $ stay line anchors, no match crosses an identity's fields.
    unmatched = [p for p in patterns if not re.search(p, identities, re.IGNORECASE | re.MULTILINE)]
    assert not unmatched
