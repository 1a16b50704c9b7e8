"""The purge of MCP authorizations started and never finished, on the real database: only pending rows idle for
MCP_AUTH_PENDING_TTL_HOURS go (with their links), each audited; connections that hold tokens always stay. Also the
whole path: a real authorization link left unused, aged, purged, and its callback refused afterwards."""

from datetime import timedelta

from django.conf import settings as django_settings
from django.utils import timezone

from mcpagent.vault.mcp_auth_purge import mcp_authorizations_purge_pending
from mcpagent.vault.models import MCP_PROVIDER, AuditEvent, McpAuthConnection, OAuthState
from mcpagent.vault.oauth_states import state_create
from mcpagent.vault.tasks import purge_pending_mcp_authorizations
from tests.fakes.oauth_server import callback_path, follow
from tests.fakes.protected_mcp import protected_mcp  # noqa: F401  (fixture)
from tests.vault.test_mcp_auth import _link

REGISTRATION_SECRET = "reg-secret-9f3a1c77d2"
ACCESS_TOKEN = "mcp-access-5b8e02aa71"


def _connection(api, name: str, *, status: str = "pending", token: dict | None = None,
                idle_hours: float = 0) -> McpAuthConnection:
    connection = McpAuthConnection.objects.create(
        client=api.client_obj, end_user="alice", server_url=f"https://{name}.example.com/mcp",
        issuer=f"https://auth.{name}.example.com", endpoints={"resource": f"https://{name}.example.com/mcp"},
        registration={"client_id": f"client-{name}", "client_secret": REGISTRATION_SECRET}, token=token,
        hint="acce...a71" if token else "", status=status)
    if idle_hours:  # auto_now fields: only an UPDATE can set them in the past
        then = timezone.now() - timedelta(hours=idle_hours)
        McpAuthConnection.objects.filter(pk=connection.pk).update(created_at=then, updated_at=then)
    return connection


def _link_row(api, connection: McpAuthConnection, *, age_hours: float = 0) -> OAuthState:
    state_create(client=api.client_obj, end_user="alice", session_id=None, provider=MCP_PROVIDER,
                 code_verifier="verifier", redirect_uri="http://testserver/api/oauth/callback", return_url="",
                 mcp_connection=connection)
    row = OAuthState.objects.filter(mcp_connection=connection).latest("created_at")
    if age_hours:
        then = timezone.now() - timedelta(hours=age_hours)
        OAuthState.objects.filter(pk=row.pk).update(created_at=then, expires_at=then + timedelta(minutes=30))
    return row


def test_only_idle_pending_authorizations_are_purged_and_audited(api, settings, log_capture):
    settings.MCP_AUTH_PENDING_TTL_HOURS = 24
    token = {"access_token": ACCESS_TOKEN, "refresh_token": "mcp-refresh-77c1d0e4f9"}
    abandoned = _connection(api, "abandoned", idle_hours=48)
    stale_link = _connection(api, "stalelink", idle_hours=48)
    old_state = _link_row(api, stale_link, age_hours=47)
    _connection(api, "fresh", idle_hours=2)
    link_made_lately = _connection(api, "relinked", idle_hours=48)
    _link_row(api, link_made_lately, age_hours=1)
    _connection(api, "active", status="active", token=token, idle_hours=500)
    _connection(api, "reauth", status="needs_reauth", token=token, idle_hours=500)
    # Reset to pending by a new authorization server but still holding a token: not a flow left unfinished.
    _connection(api, "resetwithtoken", status="pending", token=token, idle_hours=500)

    assert mcp_authorizations_purge_pending() == {"mcp_authorizations": 2}

    remaining = set(McpAuthConnection.objects.values_list("server_url", flat=True))
    assert remaining == {f"https://{n}.example.com/mcp" for n in ("fresh", "relinked", "active", "reauth",
                                                                   "resetwithtoken")}
    assert not OAuthState.objects.filter(pk=old_state.pk).exists()  # its links went with it
    assert OAuthState.objects.filter(mcp_connection=link_made_lately).count() == 1
    events = AuditEvent.objects.filter(action="expire")
    assert {e.object_id for e in events} == {str(abandoned.pk), str(stale_link.pk)}
    for event in events:
        assert (event.actor_type, event.actor_label, event.reason, event.object_type) == \
               ("system", "purge_pending_mcp_authorizations", "pending_ttl", "oauth_connection")
        assert event.client_id == api.client_obj.pk and event.end_user == "alice"
        assert REGISTRATION_SECRET not in str(event.metadata)
    assert any("purged 2 unfinished MCP authorization(s)" in line for line in log_capture.lines())
    log_capture.assert_clean([REGISTRATION_SECRET, ACCESS_TOKEN])
    # Nothing left to do: a second run deletes and records nothing.
    assert mcp_authorizations_purge_pending() == {"mcp_authorizations": 0}
    assert AuditEvent.objects.filter(action="expire").count() == 2


def test_the_age_is_the_setting(api, settings):
    _connection(api, "threehours", idle_hours=3)
    settings.MCP_AUTH_PENDING_TTL_HOURS = 4
    assert mcp_authorizations_purge_pending() == {"mcp_authorizations": 0}
    settings.MCP_AUTH_PENDING_TTL_HOURS = 2
    assert mcp_authorizations_purge_pending() == {"mcp_authorizations": 1}
    assert not McpAuthConnection.objects.exists()


def test_a_link_still_usable_keeps_its_authorization_even_past_the_age(api, settings):
    settings.MCP_AUTH_PENDING_TTL_HOURS = 0.001  # 3.6 s: shorter than a link's life
    connection = _connection(api, "inflight", idle_hours=1)
    row = _link_row(api, connection)
    OAuthState.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    assert mcp_authorizations_purge_pending() == {"mcp_authorizations": 0}
    OAuthState.objects.filter(pk=row.pk).update(used_at=timezone.now())  # spent, the exchange then failed
    assert mcp_authorizations_purge_pending() == {"mcp_authorizations": 1}


def test_beat_runs_the_task_hourly_and_it_returns_counts(api):
    entry = django_settings.CELERY_BEAT_SCHEDULE["purge-pending-mcp-authorizations"]
    assert entry["task"] == purge_pending_mcp_authorizations.name == \
           "mcpagent.vault.tasks.purge_pending_mcp_authorizations"
    assert entry["schedule"] == 3600.0
    _connection(api, "viatask", idle_hours=24 * 8)  # the default age is 7 days
    assert purge_pending_mcp_authorizations.apply().get() == {"mcp_authorizations": 1}


def test_an_abandoned_real_authorization_is_purged_and_its_old_link_then_refused(api, anon_api, protected_mcp,
                                                                               settings):
    location = follow(_link(api, protected_mcp))  # discovered, registered, signed in; the callback never called
    connection = McpAuthConnection.objects.get()
    assert connection.status == "pending" and connection.registration["client_id"]
    settings.MCP_AUTH_PENDING_TTL_HOURS = 1
    assert mcp_authorizations_purge_pending() == {"mcp_authorizations": 0}  # its link still works
    then = timezone.now() - timedelta(hours=2)
    McpAuthConnection.objects.update(updated_at=then)
    OAuthState.objects.update(created_at=then, expires_at=then + timedelta(minutes=30))
    assert mcp_authorizations_purge_pending() == {"mcp_authorizations": 1}
    assert not McpAuthConnection.objects.exists() and not OAuthState.objects.exists()
    response = anon_api.get(callback_path(location))
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_state"
    # Starting again works: discovery and registration are simply done anew.
    response = anon_api.get(callback_path(follow(_link(api, protected_mcp))))
    assert response.status_code == 200 and McpAuthConnection.objects.get().status == "active"
