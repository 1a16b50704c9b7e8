"""Catalogue credentials that are files or command-line arguments reach the real servers that need them.

File credentials: uploaded through the files API, written decrypted into a private folder only while the server
runs (its path in the server's env var or argument), removed afterwards, also on failure and on timeout.
Argument credentials: the recipe's "${KEY}" arguments get the value at start (mcp-server-git from PyPI via uvx
gets `--repository PATH`). The stored agent holds references only, and the export placeholders."""

import hashlib
import json
import secrets
import subprocess

import pytest
import yaml
from django.db import connection

from agents_app import mcp_config
from agents_app.runtime import task_redactor
from agents_app.models import Agent
from agents_app.services import agent_create, agent_create_for_catalogue_servers, agent_launch, agent_validate
from mcpagent.errors import ApplicationError
from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer
from sessions_app.credentials import credential_delete, credentials_store, file_delete
from mcpagent.vault.models import AuditEvent, Credential, StoredFile
from sessions_app.models import Session
from tests.agents_app.conftest import SERVERS, assert_credential_missing

GIT_RECIPE_ARGS = ["mcp-server-git", "--repository", "${GIT_REPOSITORY}"]  # as registry_app.importers write it


@pytest.fixture
def materialize_root(settings, tmp_path):
    """Where decrypted files are written (a folder of this test's own, so its emptiness can be checked)."""
    root = tmp_path / "materialized"
    root.mkdir()
    settings.FILES_MATERIALIZE_DIR = str(root)
    return root


def oauth_client_json() -> bytes:
    """A Google OAuth client file, with a secret that appears nowhere else."""
    return json.dumps({"installed": {
        "client_id": "1234567890-abcdefghijklmnop.apps.googleusercontent.com",
        "client_secret": f"GOCSPX-{secrets.token_urlsafe(21)}",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
        "redirect_uris": ["http://localhost"],
    }}, indent=2).encode()


def file_server(*, location: str, markers=None) -> McpServer:
    server = McpServer.objects.create(slug="file-digest", name="File Digest", description="Digests a file")
    LaunchRecipe.objects.create(server=server, kind="other", command="python", args=[str(SERVERS / "file_digest.py")],
                                env={"DIGEST_MARKER_DIR": str(markers)} if markers else {})
    CredentialRequirement.objects.create(server=server, key="DIGEST_FILE", location=location, kind="file_path",
                                         required=True, secret=True, description="OAuth client JSON")
    return server


def git_catalogue_server() -> McpServer:
    server = McpServer.objects.create(slug="git-repo", name="Git Repo", description="Reads a git repository")
    LaunchRecipe.objects.create(server=server, kind="pypi", identifier="mcp-server-git", command="uvx",
                                args=GIT_RECIPE_ARGS)
    CredentialRequirement.objects.create(server=server, key="GIT_REPOSITORY", location="arg", kind="setting",
                                         required=True, description="Path of the repository to work on")
    return server


def upload(api, session_id: str, content: bytes, *, key: str = "DIGEST_FILE", server: str = "file-digest") -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post(f"/api/sessions/{session_id}/files", {
        "file": SimpleUploadedFile("client_secret.json", content, content_type="application/json"),
        "key": key, "server": server,
    }, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def new_session(api) -> Session:
    response = api.post("/api/sessions/create")
    assert response.status_code == 201, response.content
    return Session.objects.get(pk=response.json()["session_id"])


def run(api, agent_id, message: str):
    return api.post(f"/api/agents/{agent_id}/messages", {"message": message, "model": "passthrough"}, format="json")


def tool_result(body: dict) -> str:
    assert body["tool_calls"], body
    return body["tool_calls"][0]["result"]


def stored_rows(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        return repr(cursor.fetchall())


# --- files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["file", "env"])
def test_uploaded_file_reaches_the_server_for_its_life_only(api, test_servers, materialize_root, location):
    """The server gets the path of the exact uploaded bytes in its env var (a `file` requirement, or an `env`
    one of kind file_path such as GOOGLE_APPLICATION_CREDENTIALS); the folder is gone after validation and
    after the run; the agent stores a reference, never the content or a path."""
    file_server(location=location)
    session = new_session(api)
    content = oauth_client_json()
    uploaded = upload(api, str(session.id), content)
    agent = agent_create_for_catalogue_servers(client=api.client_obj, session=session, server_slugs=["file-digest"],
                                               user_prompt="Digest my OAuth client file", workflow="Digest it",
                                               model="passthrough")
    entry = agent.mcp_config["mcpServers"]["file-digest"]
    assert entry["env"] == {"DIGEST_FILE": {"$credential": "DIGEST_FILE", "file": True}}
    assert StoredFile.objects.get(pk=uploaded["id"]).references.filter(agent_id=agent.id).exists()  # adopted

    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.READY, agent.error
    assert [t["name"] for t in agent.tools["file-digest"]] == ["file_digest", "digest_then_wait"]
    assert list(materialize_root.iterdir()) == []

    response = run(api, agent.id, "***CALL_TOOL file_digest {}")
    assert response.status_code == 200, response.content
    seen = json.loads(tool_result(response.json()))
    assert seen["sha256"] == hashlib.sha256(content).hexdigest() and seen["size"] == len(content)
    assert seen["folder"].startswith("mcpagent-files-")
    assert (seen["folder_mode"], seen["file_mode"]) == ("0o700", "0o600")
    assert not (materialize_root / seen["folder"]).exists()
    assert list(materialize_root.iterdir()) == []

    # Written for validation and for the run, each audited; never stored anywhere in the agent.
    reads = AuditEvent.objects.filter(object_type="file", action="read_for_use", key="DIGEST_FILE")
    assert sorted(reads.values_list("reason", flat=True)) == ["agent_run", "agent_validate"]
    client_secret = json.loads(content)["installed"]["client_secret"]
    agent.refresh_from_db()
    stored = json.dumps(agent.mcp_config)
    assert client_secret not in stored and seen["folder"] not in stored and str(materialize_root) not in stored
    for table in ("agents_app_agent", "agents_app_agentrun", "vault_storedfile", "vault_auditevent"):
        assert client_secret not in stored_rows(table), table
    shown = api.get(f"/api/agents/{agent.id}").json()
    assert client_secret not in json.dumps(shown) and seen["folder"] not in json.dumps(shown)


def test_files_are_removed_when_validation_fails(api, test_servers, materialize_root):
    """Another server of the agent crashes at start: the agent fails, and the file written for it is gone."""
    file_server(location="file")
    crashing = McpServer.objects.create(slug="crashing", name="Crashing", description="Crashes")
    LaunchRecipe.objects.create(server=crashing, kind="other", command="python", args=[str(SERVERS / "crashing.py")])
    session = new_session(api)
    upload(api, str(session.id), oauth_client_json())
    agent = agent_create_for_catalogue_servers(client=api.client_obj, session=session,
                                               server_slugs=["file-digest", "crashing"], user_prompt="x", workflow="y")
    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.FAILED and agent.error["server"] == "crashing", agent.error
    assert AuditEvent.objects.filter(object_type="file", action="read_for_use", reason="agent_validate").count() == 1
    assert list(materialize_root.iterdir()) == []


def test_files_are_removed_when_a_run_times_out(api, test_servers, materialize_root, tmp_path, settings):
    """The tool never returns; the run is stopped at AGENT_RUN_TIMEOUT_SECONDS and its files go with it."""
    markers = tmp_path / "markers"
    markers.mkdir()
    settings.AGENT_ALLOWED_PATH_DIRS = [str(markers)]
    file_server(location="file", markers=markers)
    session = new_session(api)
    content = oauth_client_json()
    upload(api, str(session.id), content)
    agent = agent_create_for_catalogue_servers(client=api.client_obj, session=session, server_slugs=["file-digest"],
                                               user_prompt="x", workflow="y", model="passthrough")
    assert agent_validate(agent_id=agent.id).status == Agent.Status.READY
    # The bound covers starting the server too (several seconds on a busy machine) before the tool is called.
    settings.AGENT_RUN_TIMEOUT_SECONDS = 12
    response = run(api, agent.id, "***CALL_TOOL digest_then_wait {}")
    assert response.status_code == 502 and response.json()["error"]["details"]["reason"] == "run_timeout"
    seen = json.loads((markers / "seen.json").read_text())  # the server read the file while the run lasted
    assert seen["sha256"] == hashlib.sha256(content).hexdigest()
    assert not (materialize_root / seen["folder"]).exists()
    assert list(materialize_root.iterdir()) == []


def test_a_deleted_file_is_a_clear_credential_missing(api, test_servers, materialize_root):
    file_server(location="file")
    session = new_session(api)
    uploaded = upload(api, str(session.id), oauth_client_json())
    agent = agent_create_for_catalogue_servers(client=api.client_obj, session=session, server_slugs=["file-digest"],
                                               user_prompt="x", workflow="y", model="passthrough")
    assert agent_validate(agent_id=agent.id).status == Agent.Status.READY
    file_delete(client=api.client_obj, file_id=uploaded["id"], actor=api.client_obj, reason="test")

    with pytest.raises(ApplicationError) as caught:
        with agent_launch(agent, reason="agent_run"):
            pass
    assert (caught.value.status, caught.value.code) == (409, "credential_missing")
    assert caught.value.details["server"] == "file-digest" and caught.value.details["credential"] == "DIGEST_FILE"
    response = run(api, agent.id, "***CALL_TOOL file_digest {}")
    assert response.status_code == 502, response.content
    error = response.json()["error"]
    assert error["details"]["reason"] == "credential_missing" and "DIGEST_FILE" in error["message"]
    assert list(materialize_root.iterdir()) == []


def test_a_file_uploaded_with_its_key_only_serves_the_server(api, test_servers, materialize_root):
    """A file sent with its key and no server (the chat accepts that) still reaches the server that needs it."""
    file_server(location="file")
    session = new_session(api)
    content = oauth_client_json()
    upload(api, str(session.id), content, server="")
    agent = agent_create_for_catalogue_servers(client=api.client_obj, session=session, server_slugs=["file-digest"],
                                               user_prompt="x", workflow="y", model="passthrough")
    assert agent_validate(agent_id=agent.id).status == Agent.Status.READY, agent.error
    seen = json.loads(tool_result(run(api, agent.id, "***CALL_TOOL file_digest {}").json()))
    assert seen["sha256"] == hashlib.sha256(content).hexdigest()


def test_export_renders_file_credentials_as_placeholders(api, test_servers, materialize_root):
    file_server(location="file")
    session = new_session(api)
    content = oauth_client_json()
    upload(api, str(session.id), content)
    agent = agent_create_for_catalogue_servers(client=api.client_obj, session=session, server_slugs=["file-digest"],
                                               user_prompt="x", workflow="y", model="passthrough")
    exported = api.get(f"/api/agents/{agent.id}/config").json()
    config = yaml.safe_load(exported["files"]["fastagent.config.yaml"])
    assert config["mcp"]["servers"]["file-digest"]["env"] == {"DIGEST_FILE": "${DIGEST_FILE}"}
    assert exported["placeholders"] == ["DIGEST_FILE"]
    assert exported["files"][".env.example"] == "# the path of your copy of this file\nDIGEST_FILE=\n"
    assert json.loads(content)["installed"]["client_secret"] not in json.dumps(exported)


# --- arguments --------------------------------------------------------------------------------------


@pytest.fixture
def other_repo(tmp_path):
    repo = tmp_path / "other"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def test_argument_credential_reaches_the_real_git_server(api, git_repo, other_repo):
    """mcp-server-git (PyPI, via uvx) is confined to the repository given as `--repository ${GIT_REPOSITORY}`:
    it answers for that repository and refuses another, naming the allowed one, which comes back redacted."""
    git_catalogue_server()
    session = new_session(api)
    credentials_store(client=api.client_obj, session=session, server="git-repo",
                      values={"GIT_REPOSITORY": str(git_repo)}, actor=api.client_obj, reason="chat").raise_for_errors()
    agent = agent_create_for_catalogue_servers(client=api.client_obj, session=session, server_slugs=["git-repo"],
                                               user_prompt="Status of my repository", workflow="git status",
                                               model="passthrough")
    entry = agent.mcp_config["mcpServers"]["git-repo"]
    assert entry["command"] == "uvx"
    assert entry["args"] == ["mcp-server-git", "--repository", {"$credential": "GIT_REPOSITORY"}]
    assert str(git_repo) not in json.dumps(agent.mcp_config)
    assert str(git_repo) not in stored_rows("agents_app_agent")

    agent = agent_validate(agent_id=agent.id)
    assert agent.status == Agent.Status.READY, agent.error
    assert "git_status" in [t["name"] for t in agent.tools["git-repo"]]

    mine = run(api, agent.id, '***CALL_TOOL git_status {"repo_path": "%s"}' % git_repo)
    assert mine.status_code == 200, mine.content
    result = tool_result(mine.json())
    assert "Repository status" in result and "nothing to commit" in result, result

    other = run(api, agent.id, '***CALL_TOOL git_status {"repo_path": "%s"}' % other_repo)
    assert other.status_code == 200, other.content
    refused = tool_result(other.json())
    assert "outside the allowed repository '***'" in refused, refused  # the value, redacted
    assert str(git_repo) not in refused and str(git_repo) not in other.json()["reply"]

    shown = api.get(f"/api/agents/{agent.id}").json()
    assert shown["servers"]["git-repo"]["args"] == GIT_RECIPE_ARGS and str(git_repo) not in json.dumps(shown)
    exported = api.get(f"/api/agents/{agent.id}/config").json()
    config = yaml.safe_load(exported["files"]["fastagent.config.yaml"])
    assert config["mcp"]["servers"]["git-repo"]["args"] == GIT_RECIPE_ARGS
    assert exported["placeholders"] == ["GIT_REPOSITORY"] and str(git_repo) not in json.dumps(exported)


def test_without_the_argument_credential_the_server_does_not_start_blind(api, git_repo):
    """The credential expired or was deleted: a 409 credential_missing naming it, not a server started with a
    literal "${GIT_REPOSITORY}"."""
    git_catalogue_server()
    session = new_session(api)
    credentials_store(client=api.client_obj, session=session, server="git-repo",
                      values={"GIT_REPOSITORY": str(git_repo)}, actor=api.client_obj, reason="chat").raise_for_errors()
    agent = agent_create_for_catalogue_servers(client=api.client_obj, session=session, server_slugs=["git-repo"],
                                               user_prompt="x", workflow="y", model="passthrough")
    credential = Credential.objects.get(key="GIT_REPOSITORY")
    credential_delete(client=api.client_obj, credential_id=credential.pk, actor=api.client_obj, reason="test")
    assert_credential_missing(agent, "GIT_REPOSITORY")


def test_recipe_arguments_become_references_defaults_or_nothing():
    recipe = LaunchRecipe(server=McpServer(slug="x", name="X"), kind="npm", identifier="acme-mcp", command="npx", args=[
        "-y", "acme-mcp", "--token=${TOKEN}", "--config", "${CONFIG_FILE}", "--level=${LEVEL}", "--tag", "${TAG}",
        "--region", "${REGION}",
    ])
    entry = mcp_config.entry_from_recipe(recipe, env_keys=[], header_keys=[], arg_keys=["TOKEN"],
                                         file_keys=["CONFIG_FILE"], arg_defaults={"LEVEL": "readonly"},
                                         omit_keys=["TAG"])
    assert entry["args"] == [
        "-y", "acme-mcp", {"$credential": "TOKEN", "template": "--token=${TOKEN}"}, "--config",
        {"$credential": "CONFIG_FILE", "file": True}, "--level=readonly",
        "--region", {"$credential": "REGION"},  # required, not collected: starting says it is missing
    ]
    assert entry["env"] == {}  # the file is placed by its argument
    spec = mcp_config.launch_spec(name="x", entry=entry, values={"TOKEN": "tok-secret-1", "REGION": "eu-west-1"},
                                  files={"CONFIG_FILE": "/run/f/config.json"})
    assert spec.args == ["-y", "acme-mcp", "--token=tok-secret-1", "--config", "/run/f/config.json",
                         "--level=readonly", "--region", "eu-west-1"]
    assert task_redactor([spec])("bad token tok-secret-1 in eu-west-1") == "bad token *** in ***"
    assert set(spec.secret_keys) == {"TOKEN", "CONFIG_FILE", "REGION"}
    with pytest.raises(ApplicationError) as caught:
        mcp_config.launch_spec(name="x", entry=entry, values={"TOKEN": "t"}, files={"CONFIG_FILE": "/f"})
    assert caught.value.code == "credential_missing" and caught.value.details["credential"] == "REGION"
    # A whole-argument value that starts with "-" would be read as an option of the server's own: refused, unnamed.
    with pytest.raises(ApplicationError) as caught:
        mcp_config.launch_spec(name="x", entry=entry, values={"TOKEN": "t", "REGION": "--allow-all"},
                               files={"CONFIG_FILE": "/f"})
    assert caught.value.code == "credential_invalid" and caught.value.details["credential"] == "REGION"
    assert "--allow-all" not in str(caught.value.message) + json.dumps(caught.value.details)
    # Inside a template ("--token=${TOKEN}") the value cannot become an option of its own.
    spec = mcp_config.launch_spec(name="x", entry=entry, values={"TOKEN": "-t", "REGION": "eu"}, files={"CONFIG_FILE": "/f"})
    assert "--token=-t" in spec.args


def test_a_header_template_key_is_not_sent_again_under_its_own_name():
    recipe = LaunchRecipe(server=McpServer(slug="x", name="X"), kind="remote", url="https://mcp.example.com/mcp",
                          transport="streamable-http", headers={"Authorization": "Bearer ${API_KEY}"})
    entry = mcp_config.entry_from_recipe(recipe, env_keys=[], header_keys=["API_KEY", "X-Workspace"])
    assert entry["headers"] == {"Authorization": {"$credential": "API_KEY", "template": "Bearer ${API_KEY}"},
                                "X-Workspace": {"$credential": "X-Workspace"}}


@pytest.mark.parametrize("args", [
    [{"$credential": "PKG"}],  # the package itself
    ["--from", {"$credential": "PKG"}, "mcp-server-git"],  # a launcher option's value
])
def test_a_credential_argument_cannot_choose_what_the_launcher_runs(api, args):
    with pytest.raises(ApplicationError) as caught:
        agent_create(client=api.client_obj, servers={"x": {"command": "uvx", "args": args}}, user_prompt="x",
                     workflow="y", model="passthrough")
    assert caught.value.code == "unsafe_mcp_config"
    assert not Agent.objects.exists()
