"""Progressive collection through /api/chat with the offline planner: a reply asks only for what the client and
end user have not connected yet, and a second agent for the same services asks for nothing (its session and
agent refer to the values already connected; nothing is copied)."""

from agents_app.models import Agent
from mcpagent.vault.models import Credential, VaultReference
from sessions_app.credentials import credentials_store
from sessions_app.models import Session
from tests.sessions_app.test_chat import test_catalogue  # noqa: F401  (shared fixture)

REQUEST = "Tell me the current time in Tokyo and summarize the latest commits in my local git repository"


def _chat(api, **body):
    response = api.post("/api/chat", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _asked(body) -> list[str]:
    return [item["credential_key"] for item in body["required_credentials"]]


def test_a_reply_asks_only_for_what_is_not_connected_and_a_second_agent_asks_for_nothing(
        api, other_api, bundled_catalogue, git_repo):
    first = _chat(api, message=REQUEST, end_user="alice")
    assert _asked(first) == ["GIT_REPOSITORY"]
    git_server = first["required_credentials"][0]["mcp_server"]
    # Alice connects the repository in that session (through the vault, as the chat turn that sends it does;
    # that turn's agent creation is what tests/sessions_app/test_chat.py covers).
    earlier = Session.objects.get(pk=first["session_id"])
    credentials_store(client=api.client_obj, session=earlier, server=git_server,
                      values={"GIT_REPOSITORY": str(git_repo)}, actor=api.client_obj, reason="chat").raise_for_errors()

    # The same end user's next request asks for nothing and gets its agent straight away.
    second = _chat(api, message=REQUEST, end_user="alice")
    assert second["required_credentials"] == [] and "still need" not in second["reply"]
    assert second["agent_created"] is True, second["reply"]
    # One entry, which both sessions and the agent refer to: nothing was copied.
    entry = Credential.objects.get(end_user="alice", key="GIT_REPOSITORY")
    holders = set(VaultReference.objects.filter(credential=entry).values_list("session_id", "agent_id"))
    agent = Agent.objects.get(pk=second["agent_id"])
    assert holders == {(earlier.pk, None), (agent.session_id, None), (None, agent.pk)}

    # Another end user of the client, and another client for the same end user name, are asked again.
    assert _asked(_chat(api, message=REQUEST, end_user="bob")) == ["GIT_REPOSITORY"]
    assert _asked(_chat(other_api, message=REQUEST, end_user="alice")) == ["GIT_REPOSITORY"]
    assert Credential.objects.count() == 1


def _planned(api, end_user: str, slugs: list[str]) -> str:
    """A session of `end_user` whose plan (as the analyzer would record it) uses the given catalogue servers."""
    from agents_app.master.plan import ChosenServer, Plan, WorkflowStep

    plan = Plan(request="Work with my tickets", servers=[
        ChosenServer(need=slug, slug=slug, name=slug, repository_url="", confidence=1.0, reason="test")
        for slug in slugs], workflow=[WorkflowStep(step=1, action="Do it", server=slugs[0])])
    session = Session.objects.create(client=api.client_obj, end_user=end_user,
                                     context={"request": plan.request, "plan": plan.to_dict()})
    return str(session.id)


def test_a_reply_asks_only_for_the_services_not_connected_yet(api, test_catalogue):
    servers = ["acme-tickets", "echo-secret"]
    first = _chat(api, message="here is my token", session_id=_planned(api, "alice", servers), end_user="alice",
                  credentials={"acme-tickets": {"TOKEN": "good-token-123"}})
    assert _asked(first) == ["API_KEY"] and first["session_status"] == "pending_credentials"
    # A later session of alice's asks only for what she has not connected; bob is asked for both.
    later = _chat(api, message="here is my token", session_id=_planned(api, "alice", servers), end_user="alice")
    assert _asked(later) == ["API_KEY"], later["reply"]
    assert "TOKEN for acme-tickets" not in later["reply"] and "API_KEY for echo-secret" in later["reply"]
    bob = _chat(api, message="here is my token", session_id=_planned(api, "bob", servers), end_user="bob")
    assert sorted(_asked(bob)) == ["API_KEY", "TOKEN"]
    assert Credential.objects.count() == 1
