"""Fake provider identity endpoints on 127.0.0.1, speaking each provider's real wire format.

Slack `POST /api/auth.test` ({"ok": true, "team": ...} or {"ok": false, "error": "invalid_auth"} with HTTP 200),
GitHub `GET /github/user` (401 {"message": "Bad credentials"}), Notion `GET /notion/v1/users/me` (401
{"object": "error", "code": "unauthorized", "message": "API token is invalid."}), Google `GET /google/v1/userinfo`
(401 {"error": "invalid_token", "error_description": "Invalid Credentials"}), Stripe `GET /stripe/v1/account`
(401 {"error": {"message": "Invalid API Key provided: sk_test_****", "type": "invalid_request_error"}}).
A token is valid when it is in `valid`; `down()` makes every call answer 503.

    with FakeProviders(valid={"ghp_..."}) as fake:
        fake.configure(settings)   # points CREDENTIAL_VERIFY_*_URL at it
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeProviders:
    def __init__(self, *, valid: set[str] | None = None):
        self.valid = set(valid or ())
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.unavailable = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def configure(self, settings) -> None:
        settings.CREDENTIAL_VERIFY = True
        settings.CREDENTIAL_VERIFY_SLACK_URL = f"{self.url}/api"
        settings.CREDENTIAL_VERIFY_GITHUB_URL = f"{self.url}/github"
        settings.CREDENTIAL_VERIFY_NOTION_URL = f"{self.url}/notion/v1"
        settings.CREDENTIAL_VERIFY_GOOGLE_URL = f"{self.url}/google/v1"
        settings.CREDENTIAL_VERIFY_STRIPE_URL = f"{self.url}/stripe"

    def _answer(self, method: str, path: str, token: str) -> tuple[int, dict]:
        ok = token in self.valid
        if path == "/api/auth.test" and method == "POST":
            return 200, ({"ok": True, "team": "Acme", "user": "bot"} if ok else {"ok": False, "error": "invalid_auth"})
        if path == "/github/user":
            return (200, {"login": "octocat", "id": 1}) if ok else (401, {"message": "Bad credentials"})
        if path == "/notion/v1/users/me":
            return (200, {"object": "user", "id": "u1", "name": "Acme bot"}) if ok else (
                401, {"object": "error", "status": 401, "code": "unauthorized", "message": "API token is invalid."})
        if path == "/google/v1/userinfo":
            return (200, {"sub": "1", "email": "ann@example.com"}) if ok else (
                401, {"error": "invalid_token", "error_description": "Invalid Credentials"})
        if path == "/stripe/v1/account":
            return (200, {"id": "acct_1", "object": "account"}) if ok else (
                401, {"error": {"message": "Invalid API Key provided: sk_test_****", "type": "invalid_request_error"}})
        return 404, {"error": "not found"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                fake.requests.append((method, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                status, body = (503, {"error": "unavailable"}) if fake.unavailable else fake._answer(
                    method, self.path, token)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._reply("GET")

            def do_POST(self):  # noqa: N802
                self._reply("POST")

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self) -> "FakeProviders":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
