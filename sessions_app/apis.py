"""Chat and session endpoints (request/response bodies as in the product spec, section 2.2)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mcpagent.fields import StrictCharField, end_user_field
from mcpagent.schema import error_responses
from agents_app.master.recurrence import describe, in_timezone
from agents_app.models import AgentSchedule
from sessions_app.models import Conversation, Session
from sessions_app.oauth_links import authorization_links, redirect_uri
from sessions_app.polling import poll_after_seconds
from sessions_app.selectors import session_get, session_turns
from sessions_app.services import ChatInput, chat_turn, session_create, session_delete

_SPEC_STATUS = {Session.Status.ERROR: "error", Session.Status.PENDING_CREDENTIALS: "pending_credentials"}


class RequiredCredentialSerializer(serializers.Serializer):
    mcp_server = serializers.CharField()
    credential_key = serializers.CharField()
    description = serializers.CharField()
    instructions = serializers.ListField(child=serializers.CharField())
    secret = serializers.BooleanField(required=False)
    kind = serializers.CharField(required=False)


class AuthorizationSerializer(serializers.Serializer):
    provider = serializers.CharField()
    mcp_servers = serializers.ListField(child=serializers.CharField())
    credential_keys = serializers.ListField(child=serializers.CharField(), help_text="server:KEY it supplies")
    reason = serializers.ChoiceField(choices=["not_connected", "needs_reauth"])
    authorization_url = serializers.URLField()
    server_url = serializers.CharField(required=False, help_text="provider `mcp`: the remote MCP server's URL")


class RequiredFileSerializer(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField()
    file_type = serializers.CharField()
    mcp_server = serializers.CharField(required=False)
    instructions = serializers.ListField(child=serializers.CharField(), required=False)


def _agent(session: Session):
    agent_id = session.context.get("agent_id")
    return session.agents.filter(id=agent_id).first() if agent_id else None


def _plan_view(session: Session) -> dict:
    plan = session.context.get("plan") or {}
    return {
        "servers": [
            {k: s[k] for k in ("slug", "name", "repository_url", "confidence", "reason", "need")}
            for s in plan.get("servers", [])
        ],
        "workflow": plan.get("workflow", []),
        # What the planner asks the user (the next message answers with a candidate's name, slug or number).
        "questions": [{"need": q["need"], "question": q["text"], "candidates": q["candidates"]}
                      for q in plan.get("questions", [])[:1]],
    }


class ChatApi(APIView):
    @extend_schema_serializer(component_name="ChatRequest")
    class InputSerializer(serializers.Serializer):
        class FileSerializer(serializers.Serializer):
            filename = StrictCharField(max_length=255)
            content = StrictCharField(trim_whitespace=False)
            type = serializers.ChoiceField(choices=["credential", "config", "other"], default="other")
            key = StrictCharField(max_length=200, required=False)
            mcp_server = StrictCharField(max_length=200, required=False)

        message = StrictCharField(min_length=1, max_length=settings.CHAT_MAX_MESSAGE_CHARS)
        session_id = serializers.UUIDField(required=False, allow_null=True)
        credentials = serializers.DictField(
            child=serializers.DictField(child=serializers.CharField(max_length=20_000, trim_whitespace=False,
                                                                    allow_blank=True)),
            required=False, allow_empty=True,
        )
        files = serializers.ListField(child=FileSerializer(), required=False, max_length=10)
        timezone = StrictCharField(max_length=64, required=False,
                                   help_text="Your IANA time zone (e.g. Europe/Berlin): a proposed schedule is read in it.")
        schedule = serializers.JSONField(required=False, help_text=(
            "Your answer to the proposed schedule: true keeps it, false drops it, or "
            "{\"cron\": \"0 8 * * 1-5\" | \"interval_seconds\": 900, \"timezone\": \"Europe/Berlin\"} replaces it."))
        end_user = end_user_field()
        return_url = StrictCharField(max_length=2000, required=False, help_text=(
            "Where the user's browser goes after an OAuth authorization (authorizations[].authorization_url); "
            "its host must be registered for your API client."))

    @extend_schema_serializer(component_name="ChatResponse")
    class OutputSerializer(serializers.Serializer):
        reply = serializers.CharField()
        session_id = serializers.UUIDField()
        required_credentials = RequiredCredentialSerializer(many=True)
        required_files = RequiredFileSerializer(many=True)
        authorizations = AuthorizationSerializer(many=True, help_text=(
            "Accounts to connect by OAuth instead of pasting their tokens: open authorization_url in the user's "
            "browser (it works once and expires); the keys it covers are not in required_credentials."))
        status = serializers.ChoiceField(choices=["success", "pending_credentials", "error"])
        agent_created = serializers.BooleanField()
        agent_id = serializers.UUIDField(allow_null=True)
        session_status = serializers.CharField()
        servers = serializers.ListField(child=serializers.DictField())
        workflow = serializers.ListField(child=serializers.DictField())
        optional_settings = serializers.ListField(child=serializers.DictField())
        questions = serializers.ListField(child=serializers.DictField())
        schedule = serializers.DictField(allow_null=True, help_text=(
            "The schedule the agent gets (or has): cron or interval_seconds, timezone, description, and status "
            "proposed | confirmed | declined | applied. A proposal is applied when the agent becomes ready unless "
            "you drop it (`schedule: false`)."))
        agent_status = serializers.CharField(allow_null=True, help_text="creating | validating | ready | failed")
        poll = serializers.CharField(allow_null=True, help_text="What to GET for the outcome while work goes on.")
        unverified_credentials = serializers.ListField(child=serializers.DictField(), help_text=(
            "Values this message stored without the provider's check (it could not be reached): mcp_server, "
            "credential_key, reason. They are stored, marked unverified."))

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, **error_responses(404, 409)})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        session = chat_turn(
            client=request.auth,
            data=ChatInput(message=data["message"], session_id=data.get("session_id"),
                           credentials=data.get("credentials"), files=data.get("files"),
                           timezone=data.get("timezone"), schedule=data.get("schedule"),
                           end_user=data.get("end_user", ""), return_url=data.get("return_url", ""),
                           redirect_uri=redirect_uri(request)),
        )
        body = chat_response(session, request=request)
        return Response(self.OutputSerializer(body).data, headers=_poll_headers(session))


def _poll_headers(session: Session) -> dict[str, str]:
    """While the worker is busy with the session, how long to wait before polling again."""
    busy = session.status in Session.WORKER_STATUSES
    return {"Retry-After": str(poll_after_seconds(session))} if busy else {}


def chat_response(session: Session, *, request) -> dict:
    last_user = session_turns(session=session).filter(role=Conversation.Role.USER).last()
    replies = session_turns(session=session).filter(role=Conversation.Role.ASSISTANT)
    if last_user is not None:
        replies = replies.filter(timestamp__gte=last_user.timestamp)
    reply = "\n\n".join(turn.message for turn in replies)
    if not reply:
        reply = (f"I'm {session.status.replace('_', ' ')} your request; poll GET /api/sessions/{session.id} "
                 "for the result.")
    agent = _agent(session)
    busy = session.status in Session.WORKER_STATUSES
    return {
        "reply": reply,
        "session_id": session.id,
        "required_credentials": session.required_credentials,
        "required_files": session.required_files,
        "authorizations": authorization_links(request, session, prepare=True),
        "status": _SPEC_STATUS.get(session.status, "success"),
        "agent_created": bool(agent and agent.status == "ready"),
        "agent_id": agent.id if agent and agent.status == "ready" else None,
        "session_status": session.status,
        "optional_settings": [
            {k: v for k, v in item.items() if k in ("mcp_server", "credential_key", "description", "default")}
            for item in session.context.get("optional_settings", [])
        ],
        **_plan_view(session),
        "schedule": _schedule_view(session, agent),
        "agent_status": agent.status if agent else ("creating" if session.status == Session.Status.CREATING_AGENT
                                                    else None),
        "poll": f"/api/sessions/{session.id}" if busy else None,
        "unverified_credentials": (last_user.metadata.get("unverified") or []) if last_user is not None else [],
    }


def _schedule_view(session: Session, agent) -> dict | None:
    if agent is not None and agent.status == "ready":
        applied = AgentSchedule.objects.filter(agent=agent).first()
        if applied is not None:
            shown = {"cron": applied.cron or None, "interval_seconds": applied.interval_seconds,
                     "timezone": applied.timezone}
            return {**shown, "description": describe(shown), "status": "applied",
                    "next_run_at": applied.next_run_at.isoformat() if applied.next_run_at else None}
    proposal = in_timezone((session.context.get("plan") or {}).get("schedule"),
                           session.context.get("timezone") or "UTC")
    choice = session.context.get("schedule_choice")
    keys = ("cron", "interval_seconds", "timezone", "description")
    if choice is False:
        return {**{k: (proposal or {}).get(k) for k in keys}, "status": "declined"} if proposal else None
    if isinstance(choice, dict):
        return {**{k: choice.get(k) for k in keys}, "status": "confirmed"}
    if proposal:
        return {**{k: proposal.get(k) for k in keys}, "phrase": proposal.get("phrase"),
                "status": "confirmed" if choice is True else "proposed"}
    return None


class SessionCreateApi(APIView):
    @extend_schema_serializer(component_name="SessionCreated")
    class OutputSerializer(serializers.Serializer):
        session_id = serializers.UUIDField(source="id")
        status = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(request=None, responses={201: OutputSerializer})
    def post(self, request):
        session = session_create(client=request.auth)
        return Response(self.OutputSerializer(session).data, status=status.HTTP_201_CREATED)


class SessionDetailApi(APIView):
    @extend_schema_serializer(component_name="SessionDetail")
    class OutputSerializer(serializers.Serializer):
        session_id = serializers.UUIDField()
        status = serializers.CharField()
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()
        request = serializers.CharField(allow_blank=True)
        servers = serializers.ListField(child=serializers.DictField())
        workflow = serializers.ListField(child=serializers.DictField())
        questions = serializers.ListField(child=serializers.DictField())
        missing_credentials = serializers.ListField(child=serializers.DictField())
        missing_files = serializers.ListField(child=serializers.DictField())
        authorizations = AuthorizationSerializer(many=True)
        agent = serializers.DictField(allow_null=True)
        error = serializers.CharField(allow_blank=True)
        turns = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request, session_id):
        session = session_get(client=request.auth, session_id=session_id)
        agent = _agent(session)
        body = {
            "session_id": session.id,
            "status": session.status,
            "created_at": session.created_at,
            "updated_at": session.updated_at,
            "request": session.context.get("request", ""),
            **_plan_view(session),
            # Names only: values never leave the credential store.
            "missing_credentials": [
                {"mcp_server": r["mcp_server"], "credential_key": r["credential_key"]}
                for r in session.required_credentials
            ],
            "missing_files": [{"key": f["key"], "mcp_server": f.get("mcp_server", "")} for f in session.required_files],
            "authorizations": authorization_links(request, session),
            "agent": {"id": str(agent.id), "status": agent.status} if agent else None,
            "error": session.error,
            "turns": [
                {"role": t.role, "message": t.message, "timestamp": t.timestamp.isoformat(), "metadata": t.metadata}
                for t in session_turns(session=session)
            ],
        }
        return Response(self.OutputSerializer(body).data, headers=_poll_headers(session))

    @extend_schema(responses={204: None})
    def delete(self, request, session_id):
        session_delete(client=request.auth, session_id=session_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
