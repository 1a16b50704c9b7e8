"""Connected accounts of the client: GET /api/connections, DELETE /api/connections/{id}."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mcpagent.errors import ApplicationError
from mcpagent.fields import end_user_field
from mcpagent.schema import error_responses
from mcpagent.vault.connections import connection_delete, connections_list

_END_USER = OpenApiParameter("end_user", str, description="Your id for the end user ('' or absent: none).")


def _end_user(request) -> str:
    field = end_user_field()
    try:
        return field.run_validation(request.query_params.get("end_user", ""))
    except serializers.ValidationError as exc:
        raise ApplicationError("end_user is not valid.", code="invalid_input",
                               details={"field": "end_user", "errors": exc.detail}) from None


class ConnectionListApi(APIView):
    @extend_schema_serializer(component_name="Connection")
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        service = serializers.CharField()
        end_user = serializers.CharField(allow_blank=True)
        kind = serializers.ChoiceField(choices=["api_key", "oauth", "mcp_oauth", "file"])
        identity = serializers.DictField(child=serializers.CharField(), help_text="Masked hints, never values.")
        status = serializers.CharField()
        last_used_at = serializers.DateTimeField(allow_null=True)
        expires_at = serializers.DateTimeField(allow_null=True)
        agents = serializers.ListField(child=serializers.UUIDField())

    @extend_schema_serializer(component_name="ConnectionList")
    class ListSerializer(serializers.Serializer):
        connections = serializers.ListField(child=serializers.DictField())

    @extend_schema(parameters=[_END_USER], responses={200: ListSerializer, **error_responses(400)})
    def get(self, request):
        rows = connections_list(client=request.auth, end_user=_end_user(request))
        return Response({"connections": self.OutputSerializer(rows, many=True).data})


class ConnectionDetailApi(APIView):
    @extend_schema_serializer(component_name="OAuthConnectionDeleted")
    class OAuthDeletedSerializer(serializers.Serializer):
        deleted = serializers.BooleanField()
        provider = serializers.CharField()
        revoked = serializers.BooleanField(allow_null=True, help_text=(
            "true: the provider revoked the access; false: it refused or could not be reached; null: the provider "
            "offers no revocation (the user removes the app's access in the provider's settings)."))
        message = serializers.CharField(help_text="What to tell the user.")

    @extend_schema(parameters=[_END_USER], responses={200: OAuthDeletedSerializer, 204: None,
                                                      **error_responses(400, 404)})
    def delete(self, request, connection_id):
        """204 for stored values and MCP server authorizations; an OAuth connection answers 200 saying whether its
        provider revoked the access, so the client can tell the user."""
        outcome = connection_delete(client=request.auth, end_user=_end_user(request), connection=connection_id,
                                    actor=request.auth, reason="connection_delete")
        if "oauth_connections" in outcome:
            return Response({"deleted": True, "provider": outcome["provider"], "revoked": outcome["revoked"],
                             "message": outcome["message"]})
        return Response(status=status.HTTP_204_NO_CONTENT)
