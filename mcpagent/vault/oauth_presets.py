"""What each OAuth provider we support looks like: its endpoints, default scopes and extra authorization
parameters. A staff-registered OAuthApp starts from its provider's preset; every endpoint can be overridden (tests
point them at an authorization server on 127.0.0.1).

Revocation (`revocation_style`) differs per provider: Google publishes an RFC 7009 endpoint; Slack revokes with its
Web API method `auth.revoke` (the token as a Bearer header, {"ok": true, "revoked": true}); GitHub deletes the
app's grant (DELETE /applications/{client_id}/grant, basic auth with the app's id and secret, the token in a JSON
body, 204). Notion and Microsoft have no call a client can make to revoke: a deleted connection is only forgotten
here, and `revocation_note` tells the user where to remove the app's access themselves. A `{client_id}` in the
revocation endpoint is filled with the app's client id.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    name: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str = ""
    userinfo_endpoint: str = ""
    scopes: str = ""
    # Parameters the provider needs on the authorization URL (Google: offline access, so a refresh token comes).
    authorize_params: dict = field(default_factory=dict)
    # How the client authenticates at the token endpoint (RFC 6749 2.3.1).
    token_auth_method: str = "client_secret_post"
    # Fields of the userinfo answer that name the account (first one present wins).
    identity_fields: tuple[str, ...] = ("email", "login", "name", "sub")
    # How the authorization URL separates scopes (Slack's `scope` is comma-separated; its token answers are too).
    scope_separator: str = " "
    # rfc7009 | slack_auth_revoke | github_grant | none (see the module's docstring).
    revocation_style: str = "rfc7009"
    # What the user must do themselves when the provider cannot be asked to revoke.
    revocation_note: str = ""


PRESETS: dict[str, Preset] = {
    "google": Preset(
        name="Google (Gmail, Drive, Calendar, Sheets)",
        authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
        token_endpoint="https://oauth2.googleapis.com/token",
        revocation_endpoint="https://oauth2.googleapis.com/revoke",
        userinfo_endpoint="https://openidconnect.googleapis.com/v1/userinfo",
        # The base only: each server's rule adds what it needs (config.json oauth.servers.*.scopes).
        scopes="openid email",
        # include_granted_scopes: a new link for more scopes (a newly planned Google server) keeps those granted.
        authorize_params={"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
    ),
    "slack": Preset(
        name="Slack",
        authorization_endpoint="https://slack.com/oauth/v2/authorize",
        token_endpoint="https://slack.com/api/oauth.v2.access",
        revocation_endpoint="https://slack.com/api/auth.revoke",
        scope_separator=",",
        revocation_style="slack_auth_revoke",
        scopes="channels:read chat:write users:read",
    ),
    "github": Preset(
        name="GitHub",
        authorization_endpoint="https://github.com/login/oauth/authorize",
        token_endpoint="https://github.com/login/oauth/access_token",
        revocation_endpoint="https://api.github.com/applications/{client_id}/grant",
        revocation_style="github_grant",
        userinfo_endpoint="https://api.github.com/user",
        scopes="repo read:user",
    ),
    "notion": Preset(
        name="Notion",
        authorization_endpoint="https://api.notion.com/v1/oauth/authorize",
        token_endpoint="https://api.notion.com/v1/oauth/token",
        authorize_params={"owner": "user"},
        token_auth_method="client_secret_basic",
        revocation_style="none",
        revocation_note="Notion has no revocation endpoint: the connection is forgotten here, but to revoke the "
                        "access itself remove the integration in Notion (Settings, Connections).",
    ),
    "microsoft": Preset(
        name="Microsoft 365",
        authorization_endpoint="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_endpoint="https://login.microsoftonline.com/common/oauth2/v2.0/token",
        userinfo_endpoint="https://graph.microsoft.com/oidc/userinfo",
        scopes="openid email offline_access User.Read Mail.ReadWrite",
        revocation_style="none",
        revocation_note="Microsoft has no revocation endpoint for an app: the connection is forgotten here, but to "
                        "revoke the access itself remove the app at https://myapps.microsoft.com (Manage apps).",
    ),
}

PROVIDER_CHOICES = [(key, preset.name) for key, preset in PRESETS.items()]
