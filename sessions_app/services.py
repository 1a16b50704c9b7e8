"""Sessions and the chat turn: the conversation a client has with the master agent, from request to agent."""

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

from agents_app import schedule_times
from agents_app.master.needs import resolve_answer
from agents_app.master.plan import Plan
from agents_app.master.recurrence import describe, in_timezone, schedule_to_apply
from agents_app.master.requirements import plan_requirements
from agents_app.master.revise import known_service_names, revise_request
from agents_app.master.service import analyze_request
from agents_app.models import Agent, AgentSchedule
from agents_app.oauth_rules import oauth_needs
from agents_app.queueing import task_send
from agents_app.services import agent_schedule_set, catalogue_packages_prefetch_queue, in_progress_check
from mcpagent.errors import ApplicationError
from mcpagent.logging_filters import redact
from mcpagent.models import ApiClient
from mcpagent.vault.audit import Actor
from mcpagent.vault.connections import connections_reuse
from mcpagent.vault.oauth_flow import return_url_check
from mcpagent.waiting import wait_until
from registry_app.models import CredentialRequirement, McpServer
from sessions_app.credentials import (
    credentials_for_session_delete, credentials_redactor, credentials_store, files_store,
)
from sessions_app.models import Conversation, Session
from sessions_app.replies import plan_reply, unverified_reply
from sessions_app.selectors import collected_credential_keys, collected_file_keys, session_get

logger = logging.getLogger(__name__)
Status = Session.Status
# The session tasks, sent by name: sessions_app.tasks imports this module to run them, so the imports run one way.
ANALYSE_SESSION_TASK = "sessions_app.tasks.analyse_session"
CREATE_SESSION_AGENT_TASK = "sessions_app.tasks.create_session_agent"


@dataclass
class ChatInput:
    message: str
    session_id: uuid.UUID | None = None
    credentials: dict[str, dict[str, str]] | None = None
    files: list[dict] | None = None
    timezone: str | None = None  # the client's IANA time zone, for a proposed schedule
    schedule: Any = None  # True confirms the proposed schedule, False drops it, {cron|interval_seconds, timezone} replaces it
    end_user: str = ""
    return_url: str = ""  # where an OAuth authorization sends the user back (a host the client registered)
    redirect_uri: str = ""  # our OAuth callback as this request reached it: a remote server registers it


def session_create(*, client: ApiClient, metadata: dict | None = None, end_user: str = "") -> Session:
    return Session.objects.create(client=client, end_user=end_user, status=Status.NEW,
                                  context={"metadata": metadata or {}})


@transaction.atomic
def session_delete(*, client: ApiClient, session_id) -> None:
    """Delete a session with its turns and every credential and file collected in it that no live agent holds
    (audited; see credentials_for_session_delete). Its agents stay, without the session."""
    session = session_get(client=client, session_id=session_id)
    # Locked, so a chat turn cannot store values into it (or start an agent from it) while it goes.
    session = Session.objects.select_for_update().get(pk=session.pk)
    credentials_for_session_delete(session=session, actor=client, reason="session_delete")
    session.delete()


def conversation_add(*, session: Session | None = None, agent=None, role: str, message: str,
                     metadata: dict | None = None) -> Conversation:
    return Conversation.objects.create(session=session, agent=agent, role=role, message=message, metadata=metadata or {})


def _plan(session: Session) -> Plan | None:
    data = session.context.get("plan")
    return Plan.from_dict(data) if data else None


def _server_aliases(plan: Plan | None) -> dict[str, str]:
    """Names a client may use for a chosen server in `credentials`: its slug, its name, or its need."""
    aliases: dict[str, str] = {}
    for server in plan.servers if plan else []:
        for alias in (server.slug, server.name, *server.need.split(", ")):
            aliases[alias.lower()] = server.slug
    return aliases


def _resolve_credential_servers(session: Session, credentials: dict) -> dict[str, dict[str, str]]:
    """Map the client's server names to catalogue slugs; unknown names are a 400 naming each one."""
    aliases = _server_aliases(_plan(session))
    resolved: dict[str, dict[str, str]] = {}
    unknown = []
    for name, values in credentials.items():
        slug = aliases.get(name.lower())
        if slug is None and McpServer.objects.filter(slug=name, status=McpServer.Status.ACTIVE).exists():
            slug = name
        if slug is None:
            unknown.append(name)
            continue
        resolved.setdefault(slug, {}).update(values)
    if unknown:
        choices = sorted(set(aliases.values()))  # every alias maps to one of the plan's slugs
        raise ApplicationError(
            "Credentials were sent for servers this session does not use.",
            code="unknown_server",
            details={"unknown_servers": unknown, "session_servers": choices},
        )
    return resolved


def _requirements_for(session: Session, plan: Plan) -> dict:
    """What the plan's servers still need: values and files not collected, and OAuth authorizations. Keys an OAuth
    connection supplies (or will, once authorized) are never asked for as values."""
    covered, authorizations = oauth_needs(client=session.client, end_user=session.end_user,
                                          server_slugs=plan.server_slugs())
    collected = collected_credential_keys(session=session)
    for slug, keys in covered.items():
        collected[slug] = set(collected.get(slug, set())) | keys
    files = collected_file_keys(session=session) | {f"{slug}:{key}" for slug, keys in covered.items() for key in keys}
    requirements = plan_requirements(plan.server_slugs(), collected=collected, collected_files=files)
    return {**requirements, "authorizations": authorizations}


def _store_secrets(*, session: Session, client: ApiClient, credentials: dict, files: list) -> dict:
    """Validate and store credentials and files; all-or-nothing. Returns names stored (never values), and the
    values stored unverified (their provider could not be reached to check them) with the reason."""
    stored: dict = {"credentials": {}, "files": [], "unverified": []}
    errors: dict = {}
    if credentials:
        for slug, values in _resolve_credential_servers(session, credentials).items():
            requirements = list(
                CredentialRequirement.objects.filter(server__slug=slug).values(
                    "key", "pattern", "format", "kind", "secret", "required"
                )
            )
            result = credentials_store(
                client=client, session=session, server=slug, values=values, requirements=requirements,
                actor=client, reason="chat",
            )
            if result.errors:
                errors[slug] = result.errors
            else:
                stored["credentials"][slug] = sorted(values)
                stored["unverified"] += [
                    {"mcp_server": slug, "credential_key": entry["key"],
                     "reason": entry.get("note", "").removeprefix("stored unverified: ")}
                    for entry in result.stored if entry.get("verification") == "unverified"]
    if errors:
        raise ApplicationError("Some credentials are not valid; fix the named ones and send them again.",
                               code="invalid_credentials", details=errors)
    if files:
        result = files_store(client=client, session=session, files=files, actor=client, reason="chat")
        if result.errors:
            raise ApplicationError("Some files were rejected.", code="invalid_files", details=result.errors)
        stored["files"] = [f["filename"] for f in result.files]
    return stored


def chat_turn(*, client: ApiClient, data: ChatInput) -> Session:
    """One user turn. Stores it, revises or (re)analyses the plan, collects credentials/files, and queues agent
    creation once nothing required is missing. Bad input raises before anything is written."""
    # A secret pasted into the message itself is masked before the text is stored anywhere (turns, plan).
    message = redact(data.message)
    if data.timezone is not None:
        schedule_times.check_timezone(data.timezone)
    return_url = return_url_check(client=client, return_url=data.return_url)
    dispatch: list[tuple[str, str]] = []
    with transaction.atomic():
        created = not data.session_id
        if created:
            session = session_create(client=client, end_user=data.end_user)
        else:
            session = session_get(client=client, session_id=data.session_id, end_user=data.end_user)
            session = Session.objects.select_for_update().get(pk=session.pk)
        status_before = session.status
        if session.status in Session.WORKER_STATUSES and not data.credentials and not data.files:
            raise ApplicationError(
                f"This session is {session.status.replace('_', ' ')}; wait for it to finish (poll GET "
                f"/api/sessions/{session.id}) before sending another message.",
                code="session_busy", status=409,
            )
        stored = _store_secrets(session=session, client=client, credentials=data.credentials or {},
                                files=data.files or [])
        # Also the session's own values (those sent in `credentials` now among them), whatever their shape; a
        # session made by this turn holds only what the turn stored.
        if not created or stored["credentials"] or stored["files"]:
            message = credentials_redactor(session)(message)
        if data.timezone is not None:
            session.context["timezone"] = data.timezone
        if return_url:
            session.context["oauth_return_url"] = return_url
        if data.schedule is not None:
            _schedule_choose(session, data.schedule)
        # The agent creation task discovers and registers remote servers that ask for authorization with it.
        new_redirect = data.redirect_uri and session.context.get("oauth_redirect_uri") != data.redirect_uri
        if new_redirect:
            session.context["oauth_redirect_uri"] = data.redirect_uri
        context_changed = data.timezone is not None or data.schedule is not None or return_url or new_redirect
        conversation_add(session=session, role=Conversation.Role.USER, message=message,
                         metadata={"credentials": stored["credentials"], "files": stored["files"],
                                   "unverified": stored["unverified"]})
        if stored["unverified"]:
            conversation_add(session=session, role=Conversation.Role.ASSISTANT,
                             message=unverified_reply(stored["unverified"]),
                             metadata={"status": session.status, "unverified": stored["unverified"]})
        plan = _plan(session)
        request = session.context.get("request", "")
        answered = _answer_questions(session, plan, message)
        revision = revise_request(request, message) if plan and not answered else None
        if answered:
            # The plan is made again with the user's choice; the rest of the request stays as it was.
            session.context["revision"] = ""
            session.status = Status.ANALYSING
            session.error = ""
            session.save()
            dispatch.append(("analyse", str(session.id)))
        elif plan is None or revision is not None:
            session.context["request"] = revision.request if revision else message
            session.context["revision"] = revision.summary if revision else ""
            session.status = Status.ANALYSING
            session.error = ""
            session.save()
            dispatch.append(("analyse", str(session.id)))
        elif session.status != Status.READY or stored["credentials"] or stored["files"]:
            _advance(session, announce=bool(stored["credentials"] or stored["files"]))
            if session.status == Status.CREATING_AGENT:
                dispatch.append(("create_agent", str(session.id)))
        else:
            if context_changed:  # every other branch saves the whole row
                session.save(update_fields=["context", "updated_at"])
            conversation_add(session=session, role=Conversation.Role.ASSISTANT,
                             message=_ready_reply(session), metadata={"status": session.status})
        if dispatch:  # analysis and agent creation are worker jobs: refused (all of this turn undone) at the limit
            in_progress_check(client=client, kind="creations", excluding_session=session)
    try:
        _dispatch(dispatch)
    except BrokerError:
        # Committed already (a worker must see the rows): put the session back as it was, so it is not left
        # `analysing` with no job and the same message can be sent again.
        Session.objects.filter(pk=session.pk, status__in=Session.WORKER_STATUSES).update(
            status=status_before)
        raise ApplicationError("The task queue is unavailable; send the message again shortly.",
                               code="queue_unavailable", status=503,
                               details={"session_id": str(session.id), "retry_after_seconds": 2}) from None
    if dispatch:  # a turn that started no task answers with the session as it left it (the client polls the rest)
        _wait(session)
        session.refresh_from_db()
    return session


def _answer_questions(session: Session, plan: Plan | None, message: str) -> bool:
    """Record the message as the answer to the plan's open question(s) when it picks a candidate."""
    answered = False
    for question in (plan.questions[:1] if plan else []):  # one question is open at a time
        slug = resolve_answer({"candidates": question.candidates}, message)
        if slug:
            session.context.setdefault("choices", {})[question.need] = slug
            answered = True
    return answered


def _schedule_choose(session: Session, choice: Any) -> None:
    """Record the client's answer to the proposed schedule (checked: a bad one is a 400 and nothing is kept);
    if the session's agent is already ready, its schedule is set or removed now."""
    zone = session.context.get("timezone") or "UTC"
    if isinstance(choice, bool):
        session.context["schedule_choice"] = choice
    elif isinstance(choice, dict) and set(choice) <= {"cron", "interval_seconds", "timezone"}:
        chosen = {"cron": choice.get("cron") or None, "interval_seconds": choice.get("interval_seconds"),
                  "timezone": choice.get("timezone") or zone}
        if bool(chosen["cron"]) == (chosen["interval_seconds"] is not None):
            raise ApplicationError("schedule: give exactly one of cron and interval_seconds.", code="invalid_input",
                                   details={"field": "schedule"})
        schedule_times.check_timezone(chosen["timezone"])
        if chosen["cron"]:
            schedule_times.parse_cron(chosen["cron"])
        else:
            schedule_times.check_interval(chosen["interval_seconds"])
        session.context["schedule_choice"] = {**chosen, "description": describe(chosen)}
    else:
        raise ApplicationError("schedule must be true (keep the proposed schedule), false (drop it) or an object "
                               "{cron | interval_seconds, timezone}.", code="invalid_input",
                               details={"field": "schedule"})
    agent = session.agents.filter(pk=session.context.get("agent_id"), status=Agent.Status.READY).first() \
        if session.context.get("agent_id") else None
    if agent is None:
        return
    plan = _plan(session)
    schedule = schedule_to_apply(in_timezone(plan.schedule if plan else None, zone),
                                 session.context["schedule_choice"])
    if schedule:
        agent_schedule_set(agent=agent, cron=schedule.get("cron"), interval_seconds=schedule.get("interval_seconds"),
                           timezone_name=schedule.get("timezone") or "UTC")
    else:
        AgentSchedule.objects.filter(agent=agent).delete()


def _dispatch(jobs: list[tuple[str, str]]) -> None:
    # Tasks take ids only (never secrets) and are sent after the transaction commits, so a worker sees the rows.
    for kind, session_id in jobs:
        if kind == "analyse":  # a person waits for the plan: taken before queued agent creations
            task_send(ANALYSE_SESSION_TASK, session_id, priority=settings.ANALYSIS_TASK_PRIORITY)
        else:
            task_send(CREATE_SESSION_AGENT_TASK, session_id)


def _wait(session: Session) -> None:
    """With a real worker, wait a short bound for it; the client polls GET /api/sessions/{id} after that."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    busy = Session.objects.filter(pk=session.pk, status__in=Session.WORKER_STATUSES)
    wait_until(lambda: not busy.exists(), seconds=settings.CHAT_WAIT_SECONDS)


def session_analyse(*, session_id) -> Session:
    """Run the master agent on the session's request and record the plan (the analysis task calls this)."""
    session = Session.objects.get(pk=session_id)
    try:
        plan = analyze_request(request=session.context.get("request", ""), choices=session.context.get("choices"),
                               timezone_name=session.context.get("timezone") or "UTC")
    except Exception:
        logger.exception("analysis failed for session %s", session_id)
        session.status = Status.ERROR
        session.error = "Analysis failed; please rephrase the request or try again."
        session.save(update_fields=["status", "error", "updated_at"])
        conversation_add(session=session, role=Conversation.Role.ASSISTANT, message=session.error,
                         metadata={"status": session.status})
        raise
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        session.context["plan"] = plan.to_dict()
        _advance(session, announce=False, plan_changed=True)
    if session.status == Status.CREATING_AGENT:
        _dispatch([("create_agent", str(session.id))])
    elif session.status == Status.PENDING_CREDENTIALS:
        catalogue_packages_prefetch_queue(server_slugs=[server.slug for server in plan.servers])
    return session


def _advance(session: Session, *, announce: bool, plan_changed: bool = False) -> None:
    """Recompute what is missing and move the session on: pending_credentials, or creating_agent when complete."""
    plan = _plan(session)
    if plan is not None and not plan.servers and plan.questions:
        session.status = Status.NEW  # waiting for the user's answer
        session.required_credentials, session.required_files = [], []
        session.context["authorizations"] = []
        session.save()
        conversation_add(session=session, role=Conversation.Role.ASSISTANT,
                         message=plan_reply(session=session, plan=plan, plan_changed=plan_changed, announce=announce),
                         metadata={"status": session.status, "questions": [q.need for q in plan.questions]})
        return
    if plan is None or not plan.servers:
        session.status = Status.NEW
        session.required_credentials, session.required_files = [], []
        session.context["authorizations"] = []
        session.save()
        conversation_add(session=session, role=Conversation.Role.ASSISTANT, message=_no_servers_reply(),
                         metadata={"status": session.status})
        return
    # Progressive collection: what this client already connected for the end user is not asked again.
    connections_reuse(client=session.client, session=session, servers=plan.server_slugs(),
                      actor=Actor.system("progressive_collection"), reason="connection_reuse")
    requirements = _requirements_for(session, plan)
    session.required_credentials = requirements["required_credentials"]
    session.required_files = requirements["required_files"]
    session.context["optional_settings"] = requirements["optional_settings"]
    session.context["authorizations"] = requirements["authorizations"]
    missing = bool(session.required_credentials or session.required_files or requirements["authorizations"])
    session.status = Status.PENDING_CREDENTIALS if missing else Status.CREATING_AGENT
    if plan.questions and not missing:
        session.status = Status.NEW  # no agent before the user has answered
    session.save()
    message = plan_reply(session=session, plan=plan, plan_changed=plan_changed, announce=announce)
    conversation_add(
        session=session, role=Conversation.Role.ASSISTANT, message=message,
        metadata={"status": session.status, "servers": plan.server_slugs(),
                  "missing": [f"{r['mcp_server']}:{r['credential_key']}" for r in session.required_credentials]},
    )


def _no_servers_reply() -> str:
    examples = ", ".join(known_service_names()[:12])
    return (
        "I could not tell which services this workflow needs. Describe what should happen and with which "
        f"tools, e.g. \"watch my Gmail for invoices, file them in Notion, ping me on Slack\". I know {examples} "
        "and thousands more."
    )


def _ready_reply(session: Session) -> str:
    agent = session.agents.order_by("-created_at").first()
    if agent:
        return f"Your agent {agent.id} is ready. Send it messages at /api/agents/{agent.id}/messages."
    return "Nothing more is needed from you right now."


def session_agent_finished(*, session_id, agent_id, ok: bool, error: str = "") -> None:
    """Record the end of agent creation for a session (called by the creation task)."""
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        session.status = Status.READY if ok else Status.ERROR
        session.error = "" if ok else error
        session.context["agent_id"] = str(agent_id) if agent_id else None
        session.save()
        message = (
            f"Your agent is ready (id {agent_id}). Send it messages at /api/agents/{agent_id}/messages."
            if ok else f"I could not create the agent: {error}"
        )
        conversation_add(session=session, role=Conversation.Role.ASSISTANT, message=message,
                         metadata={"status": session.status, "agent_id": str(agent_id) if agent_id else None})
