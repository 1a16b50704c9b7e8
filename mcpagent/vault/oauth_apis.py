"""GET /api/oauth/callback: where a provider sends the user's browser after they approved (or refused) access; and
GET /api/oauth/client-metadata: our OAuth client ID metadata document, for MCP authorization servers that take
those instead of dynamic registration."""

from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mcpagent.errors import NotFound
from mcpagent.schema import error_responses
from mcpagent.vault.mcp_auth_discovery import client_metadata
from mcpagent.throttling import IpRateThrottle
from mcpagent.vault.oauth_flow import authorization_finish, return_location


def callback_url(request) -> str:
    """The callback URL registered with authorization servers: OAUTH_REDIRECT_URL, else this service's own as the
    request reached it."""
    return settings.OAUTH_REDIRECT_URL or request.build_absolute_uri(reverse("oauth-callback"))


def _param(request, name: str) -> str:
    value = request.query_params.get(name, "")
    return value if isinstance(value, str) else ""


class OAuthCallbackApi(APIView):
    """No API key: the one-time `state` the link carried is the authentication (it names the client, session and
    end user). Redirects to the return_url the client gave with the link, else answers with the outcome."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [IpRateThrottle]

    @extend_schema(
        operation_id="oauth_callback",
        parameters=[OpenApiParameter(name, str, required=False) for name in ("code", "state", "error",
                                                                              "error_description")],
        responses={200: dict, 302: None, **error_responses(400, 429, 503)},
    )
    def get(self, request):
        finished = authorization_finish(state=_param(request, "state"), code=_param(request, "code"),
                                        error=_param(request, "error"),
                                        error_description=_param(request, "error_description"))
        if finished.return_url:
            return HttpResponseRedirect(return_location(finished))
        body = {"status": "connected", "provider": finished.provider, "connection_id": finished.connection_id,
                "end_user": finished.end_user}
        if finished.server_url:
            body["server_url"] = finished.server_url
        return Response(body)


class OAuthClientMetadataApi(APIView):
    """Public, no key: an authorization server fetches it to learn who the client_id (this document's own URL,
    MCP_OAUTH_CLIENT_METADATA_URL) is. A public client (no secret): PKCE protects the code. 404 when not set."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [IpRateThrottle]

    @extend_schema(operation_id="oauth_client_metadata", responses={200: dict, **error_responses(404)})
    def get(self, request):
        if not settings.MCP_OAUTH_CLIENT_METADATA_URL:
            raise NotFound("This service publishes no client ID metadata document.")
        document = client_metadata(redirect_uri=callback_url(request), scope="").model_dump(mode="json",
                                                                                          exclude_none=True)
        document.update(client_id=settings.MCP_OAUTH_CLIENT_METADATA_URL, token_endpoint_auth_method="none")
        return Response(document)
