"""Catalogue endpoints: search, one server in full, paginated list. Authentication is global (mcpagent.auth)."""

import time

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from mcpagent.pagination import CheckedPagination
from mcpagent.schema import NOT_ONLY_SPACE_OR_CONTROL, error_responses
from registry_app.models import McpServer
from registry_app.selectors import MAX_LIMIT, server_get, server_list, server_search


def _required_keys(server: McpServer) -> list[str]:
    # credentials are prefetched by the selectors: no query per server
    return [c.key for c in server.credentials.all() if c.required]


@extend_schema_serializer(component_name="ServerSummary")
class ServerSummarySerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    repository_url = serializers.CharField()
    categories = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    official = serializers.BooleanField()
    verified = serializers.BooleanField()
    tools_count = serializers.IntegerField()
    credentials = serializers.SerializerMethodField(help_text="Keys of the required credentials.")

    def get_credentials(self, server: McpServer) -> list[str]:
        return _required_keys(server)


class ServerSearchApi(APIView):
    class InputSerializer(serializers.Serializer):
        # Length and emptiness are checked by server_search, which answers with a specific error code.
        q = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="")
        limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=10)
        category = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
        explain = serializers.BooleanField(required=False, default=False)

    @extend_schema_serializer(component_name="ServerSearchResponse")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="ServerSearchResult")
        class ResultSerializer(ServerSummarySerializer):
            score = serializers.FloatField()
            ranking = serializers.DictField(required=False, help_text="Only with explain=true: ranking components.")

        query = serializers.CharField()
        results = ResultSerializer(many=True)
        took_ms = serializers.FloatField()

    @extend_schema(
        summary="Search MCP servers",
        description=(
            "Hybrid ranking (embeddings + full text, fused; exact service names boosted; quality prior). "
            f"Best first. `q` is required, at most {settings.SEARCH_MAX_QUERY_CHARS} characters; errors: "
            "`empty_query`, `query_too_long` (400)."
        ),
        parameters=[
            InputSerializer,
            # What server_search accepts: a character other than space or control, within the length limit.
            OpenApiParameter("q", {"type": "string", "minLength": 1, "maxLength": settings.SEARCH_MAX_QUERY_CHARS,
                                   "pattern": NOT_ONLY_SPACE_OR_CONTROL},
                             required=True, description="What the servers should do."),
        ],
        responses={200: OutputSerializer, **error_responses(503)},
    )
    def get(self, request):
        started = time.perf_counter()
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        hits = server_search(query=data["q"], limit=data["limit"], category=data["category"] or None)
        results = []
        for hit in hits:
            row = ServerSummarySerializer(hit.server).data
            row["score"] = round(hit.score, 4)
            if data["explain"]:
                row["ranking"] = {
                    "dense_rank": hit.dense_rank,
                    "lexical_rank": hit.lexical_rank,
                    "name_match": hit.name_match,
                    "prior": hit.prior,
                    **hit.components,
                }
            results.append(row)
        took_ms = round((time.perf_counter() - started) * 1000, 1)
        return Response({"query": data["q"].strip(), "results": results, "took_ms": took_ms})


class ServerDetailApi(APIView):
    @extend_schema_serializer(component_name="ServerDetail")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="ServerTool")
        class ToolSerializer(serializers.Serializer):
            name = serializers.CharField()
            description = serializers.CharField()
            input_schema = serializers.JSONField(allow_null=True)

        @extend_schema_serializer(component_name="ServerCredentialRequirement")
        class CredentialSerializer(serializers.Serializer):
            key = serializers.CharField()
            location = serializers.CharField()
            kind = serializers.CharField()
            description = serializers.CharField()
            instructions = serializers.JSONField()
            service = serializers.CharField()
            required = serializers.BooleanField()
            secret = serializers.BooleanField()
            pattern = serializers.CharField()
            format = serializers.CharField()
            default = serializers.CharField()
            choices = serializers.JSONField()
            example = serializers.CharField()

        @extend_schema_serializer(component_name="ServerLaunchRecipe")
        class LaunchRecipeSerializer(serializers.Serializer):
            kind = serializers.CharField()
            identifier = serializers.CharField()
            version = serializers.CharField()
            transport = serializers.CharField()
            url = serializers.CharField()
            command = serializers.CharField()
            args = serializers.JSONField()
            env = serializers.JSONField(help_text='Templates: "${KEY}" is the value of credential KEY.')
            headers = serializers.JSONField()
            priority = serializers.IntegerField()

        @extend_schema_serializer(component_name="ServerSource")
        class SourceSerializer(serializers.Serializer):
            source = serializers.CharField()
            source_id = serializers.CharField()
            location = serializers.CharField()
            first_seen = serializers.DateTimeField()
            last_seen = serializers.DateTimeField()

        slug = serializers.CharField()
        name = serializers.CharField()
        description = serializers.CharField()
        repository_url = serializers.CharField()
        homepage = serializers.CharField()
        categories = serializers.ListField(child=serializers.CharField())
        license = serializers.CharField()
        status = serializers.CharField()
        official = serializers.BooleanField()
        verified = serializers.BooleanField()
        featured = serializers.BooleanField()
        popularity = serializers.FloatField()
        tools = ToolSerializer(many=True)
        credentials = CredentialSerializer(many=True)
        launch_recipes = LaunchRecipeSerializer(many=True)
        sources = SourceSerializer(many=True)
        first_seen = serializers.DateTimeField()
        last_seen = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

    @extend_schema(summary="One MCP server: tools, credential requirements, launch recipes, provenance",
                   responses={200: OutputSerializer})
    def get(self, request, slug: str):
        server = server_get(slug=slug)
        return Response(self.OutputSerializer(server).data)


class ServerListApi(APIView):
    class InputSerializer(serializers.Serializer):
        category = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
        # Hidden servers are staff-only (admin); deprecated ones can be listed on request.
        status = serializers.ChoiceField(
            choices=[McpServer.Status.ACTIVE, McpServer.Status.DEPRECATED], default=McpServer.Status.ACTIVE
        )
        # Read by the paginator; checked here so a bad value is a 400, not silently the default.
        page = serializers.IntegerField(min_value=1, required=False,
                                        help_text="Page number, from 1; past the last page is a 404.")
        page_size = serializers.IntegerField(min_value=1, required=False,
                                             help_text="Servers per page; more than 200 gives 200.")

    @extend_schema_serializer(component_name="ServerListItem")
    class OutputSerializer(ServerSummarySerializer):
        pass

    @extend_schema(
        summary="List MCP servers (paginated, by name)",
        operation_id="servers_list",
        parameters=[
            InputSerializer,
            # A query parameter sent empty (`?status=`) counts as not sent, as DRF reads query strings.
            OpenApiParameter("status", {"type": "string", "enum": ["active", "deprecated", ""], "default": "active"},
                             description="`active` (the default) or `deprecated`."),
        ],
        responses={200: inline_serializer("PaginatedServerList", {
            "count": serializers.IntegerField(help_text="Servers in all pages."),
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null on the first."),
            "results": OutputSerializer(many=True),
        }), **error_responses(404)},
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        queryset = server_list(category=params.validated_data["category"] or None, status=params.validated_data["status"])
        paginator = CheckedPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)
