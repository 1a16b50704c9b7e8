"""Revocation in providers' own styles, for the fake authorization server (tests/fakes/oauth_server.py), on the
tokens it issued: Slack's Web API method `POST /api/auth.revoke` (the token as a Bearer header or `token` form
field; HTTP 200 with {"ok": true, "revoked": true} or {"ok": false, "error": "invalid_auth"}) and GitHub's
`DELETE /applications/{client_id}/grant` (basic auth with the app's id and secret, JSON {"access_token": ...};
204, 401 for bad client credentials, 422 for an unknown token), which revokes every token of that user's grant."""

import base64
import json


class ProviderRevocation:
    """Mixed into FakeOAuthServer: it holds `tokens`, `revoked` and `client`."""

    def _live(self, access_token: str):
        found = next((t for t in self.tokens if t.data.get("access_token") == access_token), None)
        return found if found is not None and not found.revoked else None

    def _slack_auth_revoke(self, authorization: str, form: dict):
        token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else form.get("token", "")
        found = self._live(token)
        if found is None:
            return 200, {"ok": False, "error": "invalid_auth"}, []
        found.revoked = True
        self.revoked.append(token)
        return 200, {"ok": True, "revoked": True}, []

    def _github_grant_delete(self, path: str, authorization: str, body: str):
        client_id = path.split("/")[2]
        try:
            pair = f"{self.client.client_id}:{self.client.client_secret}"
            expected = "Basic " + base64.b64encode(pair.encode()).decode()
            token = json.loads(body or "{}").get("access_token", "")
        except ValueError:
            return 400, {"message": "Problems parsing JSON"}, []
        if client_id != self.client.client_id or authorization != expected:
            return 401, {"message": "Requires authentication"}, []
        found = self._live(token)
        if found is None:
            return 422, {"message": "Validation Failed"}, []
        for grant_token in self.tokens:  # the whole grant: every token of this user for this app
            if grant_token.user == found.user and grant_token.client is found.client and not grant_token.revoked:
                grant_token.revoked = True
                self.revoked.append(grant_token.data.get("access_token", ""))
        return 204, "", []
