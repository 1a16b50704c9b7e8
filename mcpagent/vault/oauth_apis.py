"""GET /api/oauth/callback: where a provider sends the user's browser after they approved (or refused) access."""

from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mcpagent.schema import error_responses
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
