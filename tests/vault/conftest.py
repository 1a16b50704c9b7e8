import pytest

from mcpagent.vault.models import OAuthApp
from tests.fakes.oauth_server import FakeOAuthServer
from tests.sessions_app.conftest import agent_x, session_x, session_y  # noqa: F401  (shared fixtures)
from tests.sessions_app.conftest import log_capture  # noqa: F401,E402  (shared fixture)

OAUTH_CALLBACK = "http://testserver/api/oauth/callback"


@pytest.fixture
def oauth_server(settings, db):
    """The fake authorization server, with a Google OAuth app registered against it (base scopes "openid email")."""
    settings.OAUTH_REDIRECT_URL = OAUTH_CALLBACK
    with FakeOAuthServer(redirect_uris=[OAUTH_CALLBACK]) as server:
        server.register(OAuthApp)
        yield server
