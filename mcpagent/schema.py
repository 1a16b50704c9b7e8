"""OpenAPI: every error an operation can answer, in our one error shape (mcpagent.errors).

The postprocessing hook adds the errors every operation of a kind can answer (401 where an API key is needed, 404
where the path names an object, 400 where there is input, 413 where there is a body, 429 wherever requests are
rate limited, 503 everywhere); views declare their own further ones with `error_responses(...)` in
`extend_schema(responses=...)`.
"""

import drf_spectacular.openapi
from drf_spectacular.utils import OpenApiResponse, extend_schema_serializer
from rest_framework import serializers

ERROR_DESCRIPTIONS = {
    400: "The request is not valid (`validation_error` with details per field, or a named problem).",
    401: "Missing, invalid or revoked API key.",
    403: "Not allowed.",
    404: "No such object for this API client.",
    409: "The object is not in a state that allows this.",
    413: "The request body is too large.",
    422: "The agent's MCP servers failed validation.",
    429: "Rate limit (`throttled`, with Retry-After) or too much work in progress (`too_many_in_progress`).",
    502: "An upstream service (a model API or an MCP server) failed.",
    503: "A dependency (database, Redis, task queue, embeddings) is unavailable; try again shortly (Retry-After).",
}


@extend_schema_serializer(component_name="ErrorDetail")
class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: e.g. validation_error, not_found, throttled.")
    message = serializers.CharField(help_text="For people.")
    details = serializers.JSONField(allow_null=True, help_text="Structured details, or null.")


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """{status: our error response}, to merge into an `extend_schema(responses=...)`."""
    return {status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status]) for status in statuses}


def _error_reference(status: int) -> dict:
    return {"description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """SPECTACULAR_SETTINGS POSTPROCESSING_HOOKS: the errors common to each kind of operation."""
    views = {(path, method.lower()): callback for path, _regex, method, callback in generator.endpoints}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            callback = views.get((path, method))
            view_class = getattr(callback, "cls", None)
            statuses = set()
            if any(requirement for requirement in operation.get("security", [])):
                statuses |= {401}
            if view_class is None or getattr(view_class, "throttle_classes", None):
                statuses |= {429}
            statuses |= {503}  # the database or Redis unreachable for a moment (mcpagent.errors)
            parameters = operation.get("parameters", [])
            if any(p.get("in") == "path" for p in parameters):
                statuses |= {404}
            if "requestBody" in operation or any(p.get("in") == "query" for p in parameters):
                statuses |= {400}
            if "requestBody" in operation:
                statuses |= {413}  # MAX_REQUEST_BYTES
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                responses.setdefault(str(status), _error_reference(status))
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _ERROR_SCHEMA)
    schemas.setdefault("ErrorDetail", _ERROR_DETAIL_SCHEMA)
    return result


# The same as ErrorSerializer's components, for a schema where no view names them itself.
_ERROR_DETAIL_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"nullable": True}},
    "required": ["code", "message", "details"],
}
_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
                 "required": ["error"]}


# A character str.strip() keeps, spelled out so ECMA regexes (which clients use) and Python's agree: their `\s`
# differ (Python's also has \x1c-\x1f and \x85, ECMA's also \ufeff).
_SPACE = r"\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_ONLY_SPACE = f"[^{_SPACE}]"
# ... and one that is not a control character either (search queries read those as spaces).
NOT_ONLY_SPACE_OR_CONTROL = f"[^{_SPACE}\\x00-\\x1f\\x7f]"


class AutoSchema(drf_spectacular.openapi.AutoSchema):
    """drf-spectacular's, with request strings as strict as their fields: a CharField that refuses blanks says
    `minLength: 1`, and one that also trims whitespace says it needs a non-space character, so a value the schema
    allows is never refused as blank. (Spectacular's own ENFORCE_NON_BLANK_FIELDS would put minLength on response
    fields too, where empty strings are valid answers.)"""

    def _get_serializer_field_meta(self, field, direction):
        meta = super()._get_serializer_field_meta(field, direction)
        if direction == "request" and isinstance(field, serializers.CharField) and not field.allow_blank \
                and not field.read_only:
            meta.setdefault("minLength", 1)
            if field.trim_whitespace:
                meta.setdefault("pattern", NOT_ONLY_SPACE)
        return meta
