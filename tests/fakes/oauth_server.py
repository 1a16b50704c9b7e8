"""A real OAuth 2.1 authorization server on 127.0.0.1, built from authlib's server components and served over HTTP
in a thread (wsgiref): the authorization code grant with PKCE required (S256 only, RFC 7636), the refresh token grant
(rotating refresh tokens), RFC 7009 revocation, and a bearer-protected userinfo endpoint.

The authorization endpoint approves at once for the user `ann@example.com` (or refuses, with `deny = True`), so a
test follows the authorization URL with a plain GET and reads the redirect. Knobs for tests:
`expire_access_tokens()` makes every issued access token answer 401 (the provider revoked it early),
`refuse_refresh = True` answers every refresh with invalid_grant, `expires_in` sets the lifetime of new tokens.
`revoked` lists the tokens revoked through the revocation endpoint; `issued` every token answer given.

Scopes: a token answer carries the scope granted. `authorizations` records each authorization request's query;
with Google's `include_granted_scopes=true` the grant is the union of what the user granted this client before and
what the request asks (incremental authorization), as Google does.

Slack's `auth.revoke` and GitHub's grant deletion revoke the same tokens (tests/fakes/oauth_revocation_styles.py).

For MCP authorization it also publishes RFC 8414 metadata (`/.well-known/oauth-authorization-server`) and takes
RFC 7591 dynamic registrations at `/register` (authlib's ClientRegistrationEndpoint); `registered` holds them, and
a token remembers the RFC 8707 `resource` it was asked for (`token_info`). With `client_documents` ({URL: client ID
metadata document}) it advertises client ID metadata documents and takes those URLs as public clients' ids.

    with FakeOAuthServer(redirect_uris=["http://testserver/api/oauth/callback"]) as server:
        server.register(OAuthApp)   # an OAuthApp row whose endpoints point here
"""

import json
import threading
import time
from urllib.parse import parse_qsl, urlsplit
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from authlib.common.security import generate_token
from authlib.oauth2 import rfc6749
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonPayload, JsonRequest
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge

from tests.fakes.oauth_revocation_styles import ProviderRevocation

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret-3f9a"
USER = "ann@example.com"


class _Client(rfc6749.ClientMixin):
    def __init__(self, redirect_uris: list[str], client_id: str = CLIENT_ID, client_secret: str | None = CLIENT_SECRET):
        self.redirect_uris = redirect_uris
        self.client_id, self.client_secret = client_id, client_secret

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope):
        return scope

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method, endpoint):
        if self.client_secret is None:  # a public client (a client ID metadata document's)
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


class _Code(rfc6749.AuthorizationCodeMixin):
    def __init__(self, code, redirect_uri, scope, challenge, method, user):
        self.code, self.redirect_uri, self.scope = code, redirect_uri, scope
        self.code_challenge, self.code_challenge_method, self.user = challenge, method, user
        self.expires_at = time.time() + 300

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


class _Token(rfc6749.TokenMixin):
    def __init__(self, data: dict, user: str, client: _Client, resource: str = ""):
        self.data, self.user, self.client, self.resource = data, user, client, resource
        self.issued_at = time.time()
        self.revoked = False

    def check_client(self, client):
        return client.get_client_id() == self.client.get_client_id()

    def get_scope(self):
        return self.data.get("scope", "")

    def get_expires_in(self):
        return self.data.get("expires_in", 0)

    def is_expired(self):
        return False  # refresh tokens do not expire here; access tokens are checked by the userinfo endpoint

    def is_revoked(self):
        return self.revoked

    def get_user(self):
        return self.user

    def get_client(self):
        return self.client


class _Request(rfc6749.OAuth2Request):
    def __init__(self, method: str, uri: str, headers: dict, query: dict, form: dict):
        super().__init__(method, uri, headers=headers)
        self._query, self._form = query, form
        self.payload = BasicOAuth2Payload({**query, **form})

    @property
    def args(self):
        return self._query

    @property
    def form(self):
        return self._form


class _Json(JsonPayload):
    def __init__(self, data: dict):
        self._data = data

    @property
    def data(self):
        return self._data


class _PkceRequired(CodeChallenge):
    """OAuth 2.1: every authorization request carries an S256 code challenge."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with S256 is required")
        super().validate_code_challenge(grant, redirect_uri)


class FakeOAuthServer(ProviderRevocation):
    def __init__(self, *, redirect_uris: list[str], expires_in: int = 3600):
        self.client = _Client(redirect_uris)
        self.expires_in = expires_in
        self.deny = False
        self.refuse_refresh = False
        self.codes: dict[str, _Code] = {}
        self.tokens: list[_Token] = []
        self.issued: list[dict] = []
        self.revoked: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[dict] = []
        self.granted: dict[str, set[str]] = {}  # user -> scopes granted to the client so far
        self.registered: dict[str, _Client] = {}
        self.client_documents: dict[str, dict] = {}
        self.issuer = ""  # a metadata `issuer` other than its own URL (a misconfigured or impostor server)
        self._dead_before = 0.0
        self._lock = threading.RLock()
        self.server = self._authorization_server()
        self._httpd = make_server("127.0.0.1", 0, self._app, server_class=_ThreadingWSGIServer,
                                  handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"

    # --- authlib wiring ---

    def _authorization_server(self) -> rfc6749.AuthorizationServer:
        fake = self

        class Server(rfc6749.AuthorizationServer):
            def query_client(self, client_id):
                if client_id in fake.client_documents:
                    document = fake.client_documents[client_id]
                    if document.get("client_id") != client_id:
                        return None
                    return _Client(list(document.get("redirect_uris") or []), client_id, None)
                return fake.client if client_id == CLIENT_ID else fake.registered.get(client_id)

            def save_token(self, token, request):
                with fake._lock:
                    fake.tokens.append(_Token(dict(token), request.user, request.client,
                                              request.payload.data.get("resource", "")))
                    fake.issued.append(dict(token))

            def create_oauth2_request(self, request):
                return request

            def create_json_request(self, request):
                raise NotImplementedError

            def handle_response(self, status, body, headers):
                return status, body, headers

            def send_signal(self, name, *args, **kwargs):
                pass

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

            def save_authorization_code(self, code, request):
                data = request.payload.data
                scopes = set((data.get("scope") or "").split())
                if data.get("include_granted_scopes") == "true":
                    scopes |= fake.granted.get(request.user, set())
                fake.granted[request.user] = fake.granted.get(request.user, set()) | scopes
                fake.codes[code] = _Code(code, data.get("redirect_uri"), " ".join(sorted(scopes)),
                                         data.get("code_challenge"), data.get("code_challenge_method"), request.user)

            def query_authorization_code(self, code, client):
                found = fake.codes.get(code)
                return found if found and found.expires_at > time.time() else None

            def delete_authorization_code(self, authorization_code):
                fake.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.user

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token):
                if fake.refuse_refresh:
                    return None
                return next((t for t in fake.tokens if t.data.get("refresh_token") == refresh_token
                             and not t.revoked), None)

            def authenticate_user(self, credential):
                return credential.user

            def revoke_old_credential(self, refresh_token):
                refresh_token.revoked = True

        class Revocation(RevocationEndpoint):
            CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

            def query_token(self, token_string, token_type_hint):
                return next((t for t in fake.tokens if token_string in (t.data.get("access_token"),
                                                                       t.data.get("refresh_token"))), None)

            def revoke_token(self, token, request):
                token.revoked = True
                fake.revoked.append(request.form["token"])

        class Registration(ClientRegistrationEndpoint):
            def authenticate_token(self, request):
                return True  # open registration, as MCP clients expect

            def get_server_metadata(self):
                return fake.metadata()

            def save_client(self, client_info, client_metadata, request):
                client = _Client(list(client_metadata.get("redirect_uris") or []), client_info["client_id"],
                                 client_info["client_secret"])
                fake.registered[client.client_id] = client
                return client

        server = Server()
        self._registration = Registration(server)
        server.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda *a, **k: "fake-at-" + generate_token(32),
            refresh_token_generator=lambda *a, **k: "fake-rt-" + generate_token(40),
            expires_generator=lambda client, grant_type: fake.expires_in,
        ))
        server.register_grant(CodeGrant, [_PkceRequired(required=True)])
        server.register_grant(RefreshGrant)
        server.register_endpoint(Revocation)
        return server

    # --- HTTP ---

    def _app(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        form = dict(parse_qsl(body, keep_blank_values=True))
        headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        self.requests.append((method, path))
        uri = f"{self.url}{path}" + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        request = _Request(method, uri, headers, query, form)
        with self._lock:
            if path == "/authorize" and method == "GET":
                status, out, extra = self._authorize(request)
            elif path == "/token" and method == "POST":
                status, out, extra = self.server.create_token_response(request)
            elif path == "/revoke" and method == "POST":
                status, out, extra = self.server.create_endpoint_response("revocation", request)
            elif path == "/api/auth.revoke" and method == "POST":
                status, out, extra = self._slack_auth_revoke(headers.get("Authorization", ""), form)
            elif path.startswith("/applications/") and path.endswith("/grant") and method == "DELETE":
                status, out, extra = self._github_grant_delete(path, headers.get("Authorization", ""), body)
            elif path == "/.well-known/oauth-authorization-server" and method == "GET":
                status, out, extra = 200, self.metadata(), []
            elif path == "/register" and method == "POST":
                status, out, extra = self._register(method, uri, headers, body)
            elif path == "/userinfo":
                status, out, extra = self._userinfo(headers.get("Authorization", ""))
            else:
                status, out, extra = 404, {"error": "not_found"}, []
        data = (json.dumps(out) if isinstance(out, dict) else str(out or "")).encode()
        reason = {200: "OK", 201: "Created", 204: "No Content", 302: "Found", 400: "Bad Request",
                  401: "Unauthorized", 422: "Unprocessable Entity"}.get(status, "Error")
        header_list = [(k, v) for k, v in extra if k.lower() != "content-length"]
        if isinstance(out, dict) and not any(k.lower() == "content-type" for k, _ in header_list):
            header_list.append(("Content-Type", "application/json"))
        start_response(f"{status} {reason}", [*header_list, ("Content-Length", str(len(data)))])
        return [data]

    def _authorize(self, request):
        self.authorizations.append(dict(request.args))
        try:
            grant = self.server.get_consent_grant(request)
        except rfc6749.OAuth2Error as error:
            return self.server.handle_error_response(request, error)
        return self.server.create_authorization_response(request, grant_user=None if self.deny else USER,
                                                         grant=grant)

    def _register(self, method: str, uri: str, headers: dict, body: str):
        request = JsonRequest(method, uri, headers)
        try:
            request.payload = _Json(json.loads(body or "{}"))
            return self._registration.create_registration_response(request)
        except rfc6749.OAuth2Error as error:
            return error.status_code, dict(error.get_body()), []
        except ValueError:
            return 400, {"error": "invalid_client_metadata"}, []

    def metadata(self) -> dict:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": self.issuer or self.url, "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token", "registration_endpoint": f"{self.url}/register",
            "revocation_endpoint": f"{self.url}/revoke", "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["mcp", "openid", "email"],
            "client_id_metadata_document_supported": bool(self.client_documents),
        }

    def token_info(self, token: str) -> dict | None:
        """{client_id, scope, resource, expires_at} of a live access token (as an introspection would say), else
        None."""
        found = next((t for t in self.tokens if t.data.get("access_token") == token), None)
        if found is None or not self.access_token_works(token):
            return None
        return {"client_id": found.client.get_client_id(), "scope": found.get_scope(), "resource": found.resource,
                "expires_at": int(found.issued_at + found.get_expires_in())}

    def _userinfo(self, authorization: str):
        token = authorization.removeprefix("Bearer ")
        found = next((t for t in self.tokens if t.data.get("access_token") == token), None)
        if found is None or found.revoked or found.issued_at <= self._dead_before \
                or found.issued_at + found.get_expires_in() < time.time():
            return 401, {"error": "invalid_token", "error_description": "The access token is not valid"}, []
        return 200, {"sub": "1", "email": found.user}, []

    # --- test controls ---

    def expire_access_tokens(self) -> None:
        self._dead_before = time.time()

    def access_token_works(self, token: str) -> bool:
        return self._userinfo(f"Bearer {token}")[0] == 200

    def register(self, model, *, provider: str = "google", revocation: bool = True):
        """An active OAuth app for `provider` whose endpoints point at this server (revocation in the provider's
        own style: Slack's auth.revoke, GitHub's grant deletion, else RFC 7009)."""
        revocation_path = {"slack": "/api/auth.revoke",
                           "github": "/applications/{client_id}/grant"}.get(provider, "/revoke")
        return model.objects.update_or_create(provider=provider, defaults={
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scopes": "openid email",
            "authorization_endpoint": f"{self.url}/authorize", "token_endpoint": f"{self.url}/token",
            "revocation_endpoint": f"{self.url}{revocation_path}" if revocation else "",
            "userinfo_endpoint": f"{self.url}/userinfo", "is_active": True})[0]

    def __enter__(self):
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def follow(authorization_url: str) -> str:
    """GET the authorization URL as a browser would and return the redirect it answers with (the callback URL)."""
    response = requests.get(authorization_url, allow_redirects=False, timeout=5)
    assert response.status_code == 302, (response.status_code, response.text)
    return response.headers["Location"]


def callback_path(location: str) -> str:
    """The callback redirect as a path + query the Django test client can GET."""
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"
