"""What each OAuth provider we support looks like: its endpoints, default scopes and extra authorization
parameters. A staff-registered OAuthApp starts from its provider's preset; every endpoint can be overridden (tests
point them at an authorization server on 127.0.0.1).

Revocation: of these, only Google publishes an RFC 7009 endpoint among these; Slack (`auth.revoke`),
GitHub (DELETE /applications/{client_id}/grant) and Notion use their own calls, so their preset has none and a
deleted connection is only forgotten here (an app registered with an RFC 7009 endpoint revokes).
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


PRESETS: dict[str, Preset] = {
    "google": Preset(
        name="Google (Gmail, Drive, Calendar, Sheets)",
        authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
        token_endpoint="https://oauth2.googleapis.com/token",
        revocation_endpoint="https://oauth2.googleapis.com/revoke",
        userinfo_endpoint="https://openidconnect.googleapis.com/v1/userinfo",
        scopes="openid email https://www.googleapis.com/auth/gmail.modify",
        authorize_params={"access_type": "offline", "prompt": "consent"},
    ),
    "slack": Preset(
        name="Slack",
        authorization_endpoint="https://slack.com/oauth/v2/authorize",
        token_endpoint="https://slack.com/api/oauth.v2.access",
        scopes="channels:read chat:write users:read",
    ),
    "github": Preset(
        name="GitHub",
        authorization_endpoint="https://github.com/login/oauth/authorize",
        token_endpoint="https://github.com/login/oauth/access_token",
        userinfo_endpoint="https://api.github.com/user",
        scopes="repo read:user",
    ),
    "notion": Preset(
        name="Notion",
        authorization_endpoint="https://api.notion.com/v1/oauth/authorize",
        token_endpoint="https://api.notion.com/v1/oauth/token",
        authorize_params={"owner": "user"},
        token_auth_method="client_secret_basic",
    ),
    "microsoft": Preset(
        name="Microsoft 365",
        authorization_endpoint="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_endpoint="https://login.microsoftonline.com/common/oauth2/v2.0/token",
        userinfo_endpoint="https://graph.microsoft.com/oidc/userinfo",
        scopes="openid email offline_access User.Read Mail.ReadWrite",
    ),
}

PROVIDER_CHOICES = [(key, preset.name) for key, preset in PRESETS.items()]
