"""A fake Slack Web API over HTTPS on 127.0.0.1, speaking Slack's wire format: `POST /api/<method>` with the token
as a Bearer header (or a `token` form field), answered with HTTP 200 and {"ok": true, ...} or {"ok": false,
"error": "invalid_auth"}. Enough of the API for an MCP server to sign in (auth.test), load its workspace (users,
channels, client.userBoot) and post a message (chat.postMessage). Its certificate is for slack.com and
*.slack.com, signed by a FakeCA: reach it the way production reaches Slack, through the sandbox's egress proxy
routed here (SANDBOX_NETWORK_CONNECT_TO) by a server that trusts the test CA.

    with FakeSlack(ca, valid={"xoxb-..."}) as slack:
        slack.port, slack.calls   # [(method name, token), ...]
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.fakes.tls import FakeCA

TEAM = {"team": "Acme", "team_id": "T0ACME001", "url": "https://acme.slack.com/"}
USERS = [
    {"id": "U0BOT0001", "team_id": TEAM["team_id"], "name": "mcpagent", "real_name": "mcpagent bot", "is_bot": True,
     "profile": {"real_name": "mcpagent bot", "display_name": "mcpagent"}},
    {"id": "U0ANN0001", "team_id": TEAM["team_id"], "name": "ann", "real_name": "Ann Example", "is_bot": False,
     "profile": {"real_name": "Ann Example", "display_name": "ann", "email": "ann@example.com"}},
]
CHANNELS = [
    {"id": "C0GENERAL", "name": "general", "is_channel": True, "is_private": False, "is_member": True,
     "num_members": 2, "topic": {"value": "Company-wide"}, "purpose": {"value": "Announcements"}},
    {"id": "C0ALERTS1", "name": "email-alerts", "is_channel": True, "is_private": False, "is_member": True,
     "num_members": 2, "topic": {"value": ""}, "purpose": {"value": "Mail that matters"}},
]


class FakeSlack:
    def __init__(self, ca: FakeCA, *, valid: set[str]):
        self.valid = set(valid)
        self.calls: list[tuple[str, str]] = []
        self.posted: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = ca.server_context("slack.com").wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def _answer(self, method: str, token: str, form: dict[str, str]) -> dict:
        if token not in self.valid:
            return {"ok": False, "error": "invalid_auth" if token else "not_authed"}
        page_end = {"response_metadata": {"next_cursor": ""}}
        if method == "auth.test":
            return {"ok": True, **TEAM, "user": "mcpagent", "user_id": "U0BOT0001", "bot_id": "B0BOT0001"}
        if method == "users.list":
            return {"ok": True, "members": USERS, **page_end}
        if method in ("conversations.list", "users.conversations"):
            return {"ok": True, "channels": CHANNELS, **page_end}
        if method == "client.userBoot":
            return {"ok": True, "self": USERS[0], "team": {"id": TEAM["team_id"], "name": TEAM["team"]},
                    "ims": [], "channels": []}
        if method == "chat.postMessage":
            self.posted.append(form)
            return {"ok": True, "channel": form.get("channel", ""), "ts": "1764770000.000100",
                    "message": {"type": "message", "text": form.get("text", ""), "user": "U0BOT0001",
                                "ts": "1764770000.000100"}}
        return {"ok": False, "error": "unknown_method"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                url = urlsplit(self.path)
                raw = self._body().decode()
                fields = {**parse_qs(url.query), **parse_qs(raw)}
                form = {key: values[0] for key, values in fields.items()}
                # The edge API sends multipart forms: its token is one of the parts.
                form.update(re.findall(r'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', raw))
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or form.get("token", "")
                method = url.path.removeprefix("/api/")
                fake.calls.append((method, token))
                data = json.dumps(fake._answer(method, token, form)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

            do_GET = do_POST = _reply

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self) -> "FakeSlack":
        threading.Thread(target=self._server.serve_forever, name="fake-slack", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
