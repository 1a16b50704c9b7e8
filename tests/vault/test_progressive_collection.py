"""Progressive collection through /api/chat with the offline planner: a reply asks only for what the client and
end user have not connected yet, and a second agent for the same services asks for nothing (its session and
agent refer to the values already connected; nothing is copied)."""

from agents_app.models import Agent
from mcpagent.vault.models import Credential, VaultReference
from sessions_app.models import Session

REQUEST = "Tell me the current time in Tokyo and summarize the latest commits in my local git repository"


def _chat(api, **body):
    response = api.post("/api/chat", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _asked(body) -> list[str]:
    return [item["credential_key"] for item in body["required_credentials"]]


def test_a_second_agent_for_the_same_services_asks_for_nothing(api, other_api, bundled_catalogue, git_repo):
    first = _chat(api, message=REQUEST, end_user="alice")
    assert _asked(first) == ["GIT_REPOSITORY"]
    git_server = first["required_credentials"][0]["mcp_server"]
    done = _chat(api, message="here it is", session_id=first["session_id"], end_user="alice",
                 credentials={git_server: {"GIT_REPOSITORY": str(git_repo)}})
    assert done["agent_created"] is True, done["reply"]

    # The same end user's next request asks for nothing and gets its agent straight away.
    second = _chat(api, message=REQUEST, end_user="alice")
    assert second["required_credentials"] == [] and "still need" not in second["reply"]
    assert second["agent_created"] is True, second["reply"]
    assert second["agent_id"] != done["agent_id"]
    # One entry, which both sessions and both agents refer to.
    entry = Credential.objects.get(end_user="alice", key="GIT_REPOSITORY")
    sessions = {Session.objects.get(pk=first["session_id"]).pk, Session.objects.get(pk=second["session_id"]).pk}
    agents = set(Agent.objects.filter(pk__in=[done["agent_id"], second["agent_id"]]).values_list("pk", flat=True))
    assert set(VaultReference.objects.filter(credential=entry).values_list("session_id", flat=True)) - {None} == sessions
    assert set(VaultReference.objects.filter(credential=entry).values_list("agent_id", flat=True)) - {None} == agents

    # Another end user of the client, and another client for the same end user name, are asked again.
    assert _asked(_chat(api, message=REQUEST, end_user="bob")) == ["GIT_REPOSITORY"]
    assert _asked(_chat(other_api, message=REQUEST, end_user="alice")) == ["GIT_REPOSITORY"]
    assert Credential.objects.count() == 1
