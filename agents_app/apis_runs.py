"""Runs people can watch (list, live events) and webhook triggers (manage; the public hook endpoint)."""

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import renderers, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app.models import AgentRun, AgentRunEvent, AgentTrigger
from agents_app.run_events import run_event_stream
from agents_app.selectors import agent_get, agent_run_get, agent_runs
from agents_app.triggers import trigger_create, trigger_delete, trigger_fire
from mcpagent.pagination import CheckedPagination
from mcpagent.schema import error_responses
from mcpagent.throttling import IpRateThrottle


def run_summary(run: AgentRun) -> dict:
    return {
        "run_id": str(run.id),
        "status": run.status,
        "trigger": run.trigger,
        "model": run.model,
        "tool_calls": run.metadata.get("tool_calls"),
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


class AgentRunListApi(APIView):
    @extend_schema(operation_id="agents_runs_list", responses={200: dict},
                   parameters=[OpenApiParameter("page", int, description="1-based page, newest runs first."),
                               OpenApiParameter("page_size", int, description="Runs per page (at most 200).")])
    def get(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        paginator = CheckedPagination()
        page = paginator.paginate_queryset(agent_runs(agent=agent), request, view=self)
        return paginator.get_paginated_response([run_summary(run) for run in page])


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets a client ask for `text/event-stream`; an error before the stream starts is rendered as JSON."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return renderers.JSONRenderer().render(data)


# OpenAPI 3.0 has a text/event-stream response's schema describe one event.
RUN_EVENT_SCHEMA = {
    "type": "object",
    "required": ["data", "event"],
    "properties": {
        "id": {"type": "string", "description": "The event's sequence number; send it back as Last-Event-ID."},
        "event": {"type": "string", "enum": [*AgentRunEvent.Kind.values, "timeout"]},
        "data": {"type": "string", "description": 'JSON: {"seq", "kind", "data", "at"}.'},
        "retry": {"type": "integer"},
    },
}


class AgentRunEventsApi(APIView):
    renderer_classes = [renderers.JSONRenderer, EventStreamRenderer]

    def perform_content_negotiation(self, request, force=False):
        # DRF takes `?format=` (empty) as no format; an unknown one is a 404. (force: rendering this very error.)
        if not force and request.query_params.get("format") == "":
            raise serializers.ValidationError({"format": ["Give `sse` or `json`, or leave `format` out."]})
        return super().perform_content_negotiation(request, force=force)

    @extend_schema(operation_id="agents_runs_events",
                   responses={(200, "text/event-stream"): RUN_EVENT_SCHEMA},
                   description="Server-Sent Events: `tool_started`, `tool_finished`, `text`, `done` (and `timeout` "
                               "when the stream's time bound RUN_EVENTS_STREAM_SECONDS is reached; reconnect with "
                               "`Last-Event-ID`). What already happened is replayed first.")
    def get(self, request, agent_id, run_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        run = agent_run_get(agent=agent, run_id=run_id)
        last = request.headers.get("Last-Event-ID") or request.query_params.get("after") or "0"
        after = int(last) if last.isdigit() and len(last) < 9 else 0
        response = StreamingHttpResponse(run_event_stream(run=run, after=after), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response


def trigger_body(trigger: AgentTrigger) -> dict:
    return {
        "trigger_id": str(trigger.id),
        "agent_id": str(trigger.agent_id),
        "name": trigger.name,
        "signed": trigger.signing_secret is not None,
        "enabled": trigger.enabled,
        "created_at": trigger.created_at.isoformat(),
        "last_fired_at": trigger.last_fired_at.isoformat() if trigger.last_fired_at else None,
    }


class AgentTriggersApi(APIView):
    @extend_schema_serializer(component_name="AgentTriggerInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        signed = serializers.BooleanField(required=False, default=True,
                                          help_text="Require X-Signature-256 (a secret is generated unless given).")
        signing_secret = serializers.CharField(required=False, max_length=256, trim_whitespace=False,
                                               help_text="Your own HMAC secret (16-256 characters).")

    @extend_schema(operation_id="agents_triggers_list", responses={200: dict})
    def get(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        return Response({"triggers": [trigger_body(t) for t in agent.triggers.all()[:100]]})

    @extend_schema(operation_id="agents_triggers_create", request=InputSerializer,
                   responses={201: dict, **error_responses(409)})
    def post(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        trigger, token, secret = trigger_create(agent=agent, name=data.get("name", ""), signed=data["signed"],
                                                signing_secret=data.get("signing_secret"))
        body = {**trigger_body(trigger), "url": request.build_absolute_uri(f"/api/hooks/{token}"),
                "signing_secret": secret,
                "note": "The URL and signing secret are shown only now; store them. Sign each call with "
                        "X-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>."}
        return Response(body, status=status.HTTP_201_CREATED)


class AgentTriggerDetailApi(APIView):
    @extend_schema(operation_id="agents_triggers_destroy", responses={204: None})
    def delete(self, request, agent_id, trigger_id):
        trigger_delete(agent=agent_get(client=request.auth, agent_id=agent_id), trigger_id=trigger_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TriggerHookApi(APIView):
    """The webhook itself: no API key, the URL's token (and the signature, when the trigger is signed) is the
    authentication. The raw body is the run's input."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [IpRateThrottle]
    parser_classes: list = []  # the body is read raw (request.body): the signature covers its exact bytes

    @extend_schema(operation_id="hooks_fire", request=None,
                   responses={202: dict, **error_responses(401, 404, 409, 413, 429)})
    def post(self, request, token):
        run = trigger_fire(token=token, body=request.body, headers=request.headers)
        return Response({"status": "accepted", "run_id": str(run.id), "run_status": run.status},
                        status=status.HTTP_202_ACCEPTED)
