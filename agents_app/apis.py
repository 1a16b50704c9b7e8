"""Agent endpoints: create (spec 2.2.2), inspect, delete, export as a fast-agent project, and talk to the agent.

Creation and runs happen in Celery workers. The endpoints wait a short bound for them
(AGENT_CREATE_WAIT_SECONDS, AGENT_RUN_WAIT_SECONDS) and otherwise answer 202 with what to poll. Without a
broker (eager mode) the work runs inline and the answer is always final.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app.models import Agent, AgentRun, AgentSchedule
from agents_app.secrets import secrets_state
from agents_app.selectors import (
    agent_export,
    agent_get,
    agent_list,
    agent_run_get,
    agent_schedule_get,
    agent_servers,
    agent_turns,
    run_tool_timings,
)
from agents_app.queueing import wait_for
from agents_app.services.creation import agent_create
from agents_app.services.deletion import agent_delete
from agents_app.services.inputs import MAX_PLAYBACK_STEPS, OFFLINE_MODELS
from agents_app.services.runs import agent_message_send, agent_run_queue
from agents_app.services.schedules import agent_schedule_delete, agent_schedule_set
from agents_app.services.validation import agent_revalidation_queue, agent_validation_queue
from agents_app.remote_auth import authorization_links
from mcpagent.errors import ApplicationError
from mcpagent.fields import StrictCharField, end_user_field
from mcpagent.schema import error_responses
from mcpagent.vault.oauth_apis import callback_url
from mcpagent.vault.oauth_states import return_url_check


def agent_body(agent: Agent) -> dict:
    credentials = secrets_state(agent=agent)
    return {
        "agent_id": str(agent.id),
        "name": agent.name,
        "status": agent.status,
        "model": agent.model,
        "session_id": str(agent.session_id) if agent.session_id else None,
        "user_prompt": agent.metadata.get("user_prompt", ""),
        "workflow": agent.workflow,
        "workflow_steps": agent.metadata.get("workflow_steps", []),
        "instruction": agent.instruction,
        "servers": agent_servers(agent=agent),
        "tools": {name: [t["name"] for t in tools] for name, tools in agent.tools.items()},
        "progress": agent.progress,
        "error": agent.error,
        "playback_steps": len(agent.metadata.get("playback", [])),
        # What a deleted or expired connection took away, and values stored without the provider's check.
        "missing_credentials": credentials["missing"],
        "unverified_credentials": credentials["unverified"],
        "created_at": agent.created_at.isoformat(),
        "updated_at": agent.updated_at.isoformat(),
    }


def run_body(run: AgentRun) -> dict:
    turns = agent_turns(agent=run.agent, run=run)
    timings = run_tool_timings(run=run)
    return {
        "run_id": str(run.id),
        "status": run.status,
        "trigger": run.trigger,
        "trigger_id": run.metadata.get("trigger_id"),
        "model": run.model,
        "message": run.message,
        "reply": run.reply,
        "error": run.error,
        "tool_calls": [{**{k: v for k, v in call.items() if k != "call_id"}, **timings.get(call["call_id"], {})}
                       for call in _tool_calls(turns)],
        "seconds": run.metadata.get("seconds"),
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def _tool_calls(turns) -> list[dict]:
    calls: dict[str, dict] = {}
    for turn in turns:
        meta = turn.metadata
        if meta.get("kind") == "tool_call":
            calls[meta["call_id"]] = {"call_id": meta["call_id"], "tool": meta.get("tool"), "server": meta.get("server"),
                                      "arguments": meta.get("arguments"), "result": None, "is_error": None}
        elif meta.get("kind") == "tool_result" and meta.get("call_id") in calls:
            calls[meta["call_id"]].update(result=turn.message, is_error=meta.get("is_error"))
    return list(calls.values())


def turn_body(turn) -> dict:
    return {"id": str(turn.id), "role": turn.role, "message": turn.message, "metadata": turn.metadata,
            "timestamp": turn.timestamp.isoformat()}


# The JSON fields' shapes, so the schema says what the validators below (and agent_create) accept.
@extend_schema_field({"type": "object", "properties": {"mcpServers": {
    "type": "object", "additionalProperties": {"type": "object"}, "minProperties": 1,
    "description": "Server name -> fast-agent server entry (`command`/`args`/`env`, or `url`)."}},
    "required": ["mcpServers"]})
class _McpConfigField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "properties": {"servers": {"type": "array", "items": {}}}})
class _ServerInfoField(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {
    "oneOf": [{"type": "string"}, {"type": "object"}]}}]})
class _WorkflowField(serializers.JSONField):
    pass


@extend_schema_field({"type": "array", "minItems": 1, "maxItems": MAX_PLAYBACK_STEPS, "items": {
    "type": "object", "required": ["role"], "properties": {
        "role": {"enum": ["user", "assistant"]}, "text": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "arguments": {"type": "object"}}}}}}})
class _PlaybackField(serializers.JSONField):
    pass


class AgentCreateApi(APIView):
    @extend_schema_serializer(component_name="AgentCreateInput")
    class InputSerializer(serializers.Serializer):
        mcp_server_info = _ServerInfoField(required=False)
        mcp_config = _McpConfigField()
        user_prompt = StrictCharField(max_length=20_000)
        workflow = _WorkflowField()
        model = serializers.CharField(max_length=100, required=False, allow_blank=True)
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        playback = _PlaybackField(required=False, help_text="Scripted steps for model `playback`.")
        end_user = end_user_field()
        return_url = serializers.CharField(max_length=2000, required=False, allow_blank=True, help_text=(
            "Where the user's browser goes after an authorization a 422 offers (a host registered for the client)."))

        def validate_mcp_config(self, value):
            if not isinstance(value, dict) or not isinstance(value.get("mcpServers"), dict):
                raise serializers.ValidationError("must be an object with an `mcpServers` object.")
            return value

        def validate_mcp_server_info(self, value):
            if not isinstance(value, dict) or not isinstance(value.get("servers", []), list):
                raise serializers.ValidationError("must be an object with a `servers` list.")
            return value

    @extend_schema_serializer(component_name="AgentCreateOutput")
    class OutputSerializer(serializers.Serializer):
        status = serializers.CharField()
        agent_id = serializers.UUIDField()
        message = serializers.CharField()
        agent = serializers.DictField()

    @extend_schema(request=InputSerializer,
                   responses={201: OutputSerializer, 202: OutputSerializer, **error_responses(400, 422, 503)})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return_url_check(client=request.auth, return_url=data.get("return_url", ""))
        agent = agent_create(
            client=request.auth, servers=data["mcp_config"]["mcpServers"], server_info=data.get("mcp_server_info"),
            user_prompt=data["user_prompt"], workflow=data["workflow"], model=data.get("model") or None,
            name=data.get("name", ""), playback=data.get("playback"), end_user=data.get("end_user", ""),
        )
        agent_validation_queue(agent=agent)
        return validation_answer(request, agent, self.OutputSerializer, return_url=data.get("return_url", ""),
                                 created=True)


def validation_answer(request, agent: Agent, output, *, return_url: str, created: bool) -> Response:
    """The answer once an agent's validation was queued: 201 (200 for a revalidation) when it is ready, 202 while
    it goes on, 422 when it failed (with `authorizations` for servers that need the end user to sign in)."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        wait_for(Agent.objects.filter(pk=agent.pk), done=(Agent.Status.READY, Agent.Status.FAILED),
                 seconds=settings.AGENT_CREATE_WAIT_SECONDS)
    agent.refresh_from_db()
    if agent.status == Agent.Status.FAILED:
        error = agent.error or {}
        details = {"agent_id": str(agent.id), "server": error.get("server"), "reason": error.get("code"),
                   "hint": error.get("hint"), "errors": error.get("servers", [error])}
        links = authorization_links(agent, redirect_uri=callback_url(request), return_url=return_url)
        if links:
            details["authorizations"] = links
        raise ApplicationError(error.get("message", "The agent could not be created."),
                               code="agent_validation_failed", status=422, details=details)
    if agent.status == Agent.Status.READY:
        body = {"status": "ok", "agent_id": agent.id,
                "message": "Agent created successfully" if created else "Agent validated successfully",
                "agent": agent_body(agent)}
        return Response(output(body).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    body = {"status": "ok", "agent_id": agent.id,
            "message": f"Agent is being validated ({agent.status}); poll GET /api/agents/{agent.id}.",
            "agent": agent_body(agent)}
    return Response(output(body).data, status=status.HTTP_202_ACCEPTED)


class AgentValidateApi(APIView):
    """Validate a finished agent again: start its servers with its current credentials and authorizations (after
    the end user signed in to a server that asked for it, or a credential was fixed)."""

    @extend_schema_serializer(component_name="AgentValidateInput")
    class InputSerializer(serializers.Serializer):
        return_url = serializers.CharField(max_length=2000, required=False, allow_blank=True, help_text=(
            "Where the user's browser goes after an authorization the answer offers (a registered host)."))

    @extend_schema(operation_id="agents_validate", request=InputSerializer,
                   responses={200: AgentCreateApi.OutputSerializer, 202: AgentCreateApi.OutputSerializer,
                              **error_responses(409, 422, 503)})
    def post(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return_url = return_url_check(client=request.auth, return_url=serializer.validated_data.get("return_url", ""))
        agent_revalidation_queue(agent=agent)
        return validation_answer(request, agent, AgentCreateApi.OutputSerializer, return_url=return_url,
                                 created=False)


class AgentListApi(APIView):
    @extend_schema(operation_id="agents_list", responses={200: dict})
    def get(self, request):
        agents = agent_list(client=request.auth)[:200]
        return Response({"agents": [{"agent_id": str(a.id), "name": a.name, "status": a.status, "model": a.model,
                                     "created_at": a.created_at.isoformat()} for a in agents]})


class AgentDetailApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, agent_id):
        return Response(agent_body(agent_get(client=request.auth, agent_id=agent_id)))

    @extend_schema(responses={204: None})
    def delete(self, request, agent_id):
        agent_delete(client=request.auth, agent_id=agent_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AgentConfigApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        return Response({"agent_id": str(agent.id), **agent_export(agent=agent)})


class AgentMessagesApi(APIView):
    @extend_schema_serializer(component_name="AgentMessageInput")
    class InputSerializer(serializers.Serializer):
        message = StrictCharField(min_length=1, max_length=50_000)
        model = serializers.ChoiceField(choices=list(OFFLINE_MODELS), required=False,
                                        help_text="Override the agent's model for this message (offline models only).")

    @extend_schema(request=InputSerializer, responses={200: dict, 202: dict, **error_responses(409, 502, 503)})
    def post(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = agent_message_send(agent=agent, message=serializer.validated_data["message"],
                                 model=serializer.validated_data.get("model"), actor=request.auth)
        agent_run_queue(run=run)
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            wait_for(AgentRun.objects.filter(pk=run.pk), done=(AgentRun.Status.SUCCEEDED, AgentRun.Status.FAILED),
                     seconds=settings.AGENT_RUN_WAIT_SECONDS)
        run.refresh_from_db()
        if run.status == AgentRun.Status.FAILED:
            error = run.error or {}
            raise ApplicationError(
                error.get("message", "The agent run failed."), code="agent_run_failed", status=502,
                details={"run_id": str(run.id), "server": error.get("server"), "reason": error.get("code"),
                         "hint": error.get("hint")},
            )
        if run.status == AgentRun.Status.SUCCEEDED:
            return Response({**run_body(run), "status": "ok", "run_status": run.status})
        return Response({"status": run.status, "run_id": str(run.id),
                         "message": f"The agent is working; poll GET /api/agents/{agent.id}/runs/{run.id}."},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: dict})
    def get(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        turns = agent_turns(agent=agent)
        return Response({"agent_id": str(agent.id), "turns": [turn_body(t) for t in turns[:1000]]})


class AgentRunApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, agent_id, run_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        return Response(run_body(agent_run_get(agent=agent, run_id=run_id)))


def schedule_body(schedule: AgentSchedule) -> dict:
    return {
        "agent_id": str(schedule.agent_id),
        "cron": schedule.cron or None,
        "interval_seconds": schedule.interval_seconds,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "paused": bool(schedule.paused_reason),
        "paused_reason": schedule.paused_reason or None,
        "consecutive_failures": schedule.consecutive_failures,
        "next_run_at": schedule.next_run_at.isoformat() if schedule.next_run_at else None,
        "last_run_at": schedule.last_run_at.isoformat() if schedule.last_run_at else None,
        "created_at": schedule.created_at.isoformat(),
        "updated_at": schedule.updated_at.isoformat(),
    }


class AgentScheduleApi(APIView):
    """The agent's schedule: it runs its workflow by itself at the times a cron expression names (in a time zone)
    or every `interval_seconds`; see the README's *Schedules*."""

    @extend_schema_serializer(component_name="AgentScheduleInput")
    class InputSerializer(serializers.Serializer):
        cron = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200,
                                     help_text="5 fields: minute hour day-of-month month day-of-week, e.g. `0 8 * * *`.")
        interval_seconds = serializers.IntegerField(required=False, allow_null=True,
                                                    help_text="Instead of cron: run every N seconds (at least 60).")
        timezone = serializers.CharField(required=False, default="UTC", max_length=64,
                                         help_text="IANA time zone the cron expression is read in.")
        enabled = serializers.BooleanField(required=False, default=True)

    @extend_schema_serializer(component_name="AgentScheduleOutput")
    class OutputSerializer(serializers.Serializer):
        agent_id = serializers.UUIDField()
        cron = serializers.CharField(allow_null=True)
        interval_seconds = serializers.IntegerField(allow_null=True)
        timezone = serializers.CharField()
        enabled = serializers.BooleanField()
        paused = serializers.BooleanField()
        paused_reason = serializers.CharField(allow_null=True, help_text="Why the schedule paused itself "
                                              "(the last of AGENT_SCHEDULE_MAX_FAILURES failed runs in a row).")
        consecutive_failures = serializers.IntegerField()
        next_run_at = serializers.DateTimeField(allow_null=True)
        last_run_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

    @extend_schema(operation_id="agents_schedule_retrieve", responses={200: OutputSerializer})
    def get(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        return Response(self.OutputSerializer(schedule_body(agent_schedule_get(agent=agent))).data)

    @extend_schema(operation_id="agents_schedule_update", request=InputSerializer,
                   responses={200: OutputSerializer, 201: OutputSerializer})
    def put(self, request, agent_id):
        agent = agent_get(client=request.auth, agent_id=agent_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        schedule, created = agent_schedule_set(agent=agent, cron=data.get("cron"),
                                               interval_seconds=data.get("interval_seconds"),
                                               timezone_name=data["timezone"], enabled=data["enabled"])
        return Response(self.OutputSerializer(schedule_body(schedule)).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(operation_id="agents_schedule_destroy", responses={204: None})
    def delete(self, request, agent_id):
        agent_schedule_delete(agent=agent_get(client=request.auth, agent_id=agent_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
