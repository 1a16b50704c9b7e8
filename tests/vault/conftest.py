from tests.sessions_app.conftest import agent_x, session_x, session_y  # noqa: F401  (shared fixtures)
from tests.sessions_app.conftest import log_capture  # noqa: F401,E402  (shared fixture)
