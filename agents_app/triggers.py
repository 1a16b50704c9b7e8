"""Webhook triggers: a secret URL that starts a run of its agent with the request's body as input.

The URL carries a random token (32 bytes, URL-safe); only its SHA-256 is stored, so the URL is shown once, at
creation. A trigger may also have a signing secret (given by the client or generated, stored encrypted, shown
once): then every call must carry `X-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` (GitHub's scheme,
whose `X-Hub-Signature-256` header is accepted too), or it is a 401 and nothing starts.

Replays: a call whose delivery id (`X-Delivery-ID`, or GitHub's `X-GitHub-Delivery`) or whose exact body was
accepted within TRIGGER_REPLAY_WINDOW_SECONDS is refused with a 409 (the body rule also stops a captured call
resent with a new delivery id; a sender repeating the same payload on purpose should add a timestamp or id to
it). Floods: more than TRIGGER_MAX_PER_MINUTE accepted calls of one trigger in a minute are a 429.
"""

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents_app.models import Agent, AgentRun, AgentTrigger, TriggerDelivery
from agents_app.selectors import agent_trigger_get
from agents_app.services.runs import agent_message_send, agent_run_queue
from mcpagent.errors import ApplicationError, NotFound

logger = logging.getLogger(__name__)

SIGNATURE_HEADERS = ("X-Signature-256", "X-Hub-Signature-256")
DELIVERY_HEADERS = ("X-Delivery-ID", "X-GitHub-Delivery")
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
MAX_TRIGGERS_PER_AGENT = 20


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def sign(secret: bytes | str, body: bytes) -> str:
    """The header value a sender puts in X-Signature-256 for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


@transaction.atomic
def trigger_create(*, agent: Agent, name: str = "", signed: bool = True,
                   signing_secret: str | None = None) -> tuple[AgentTrigger, str, str | None]:
    """A new trigger, its URL token and its signing secret (None when unsigned): the only time either is
    returned. A client-chosen secret must be 16-256 characters."""
    if signing_secret is not None:
        if not isinstance(signing_secret, str) or not MIN_SECRET_CHARS <= len(signing_secret) <= MAX_SECRET_CHARS:
            raise ApplicationError(f"signing_secret must be {MIN_SECRET_CHARS}-{MAX_SECRET_CHARS} characters.",
                                   code="invalid_input", details={"field": "signing_secret"})
        signed = True
    Agent.objects.select_for_update().filter(pk=agent.pk).first()
    if AgentTrigger.objects.filter(agent=agent).count() >= MAX_TRIGGERS_PER_AGENT:
        raise ApplicationError(f"An agent has at most {MAX_TRIGGERS_PER_AGENT} triggers; delete one first.",
                               code="too_many_triggers", status=409, details={"limit": MAX_TRIGGERS_PER_AGENT})
    token = secrets.token_urlsafe(32)
    secret = (signing_secret or secrets.token_hex(32)) if signed else None
    trigger = AgentTrigger.objects.create(agent=agent, name=name[:200], token_hash=token_hash(token),
                                          signing_secret=secret.encode() if secret else None)
    return trigger, token, secret


def trigger_delete(*, agent: Agent, trigger_id: Any) -> None:
    agent_trigger_get(agent=agent, trigger_id=trigger_id).delete()


def _header(headers: Any, names: tuple[str, ...]) -> str:
    for name in names:
        value = headers.get(name)
        if value:
            return value.strip()
    return ""


def trigger_fire(*, token: str, body: bytes, headers: Any) -> AgentRun:
    """Check a webhook call and start its run (queued after the commit). 404 unknown token, 413 too large,
    401 bad or missing signature, 409 replay or agent not ready, 429 over the trigger's rate."""
    trigger = (AgentTrigger.objects.select_related("agent", "agent__client")
               .filter(token_hash=token_hash(token), enabled=True).first())
    if trigger is None:
        raise NotFound("No such trigger.")
    if len(body) > settings.TRIGGER_MAX_PAYLOAD_BYTES:
        raise ApplicationError(f"The body is larger than {settings.TRIGGER_MAX_PAYLOAD_BYTES} bytes.",
                               code="payload_too_large", status=413,
                               details={"max_bytes": settings.TRIGGER_MAX_PAYLOAD_BYTES})
    if trigger.signing_secret is not None:
        given = _header(headers, SIGNATURE_HEADERS)
        if not given or not hmac.compare_digest(given.encode("latin-1", "replace"),
                                                sign(trigger.signing_secret, body).encode()):
            raise ApplicationError("Missing or wrong X-Signature-256 (sha256=<hex HMAC-SHA256 of the body>).",
                                   code="bad_signature", status=401)
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApplicationError("The body must be UTF-8 text (JSON, form data or plain text).",
                               code="invalid_input", details={"field": "body"}) from None
    delivery_id = _header(headers, DELIVERY_HEADERS)[:200]
    digest = hashlib.sha256(body).hexdigest()
    now = timezone.now()
    with transaction.atomic():
        # One trigger's calls are checked one after another, so two copies of a call cannot both pass.
        AgentTrigger.objects.select_for_update().filter(pk=trigger.pk).first()
        recent = TriggerDelivery.objects.filter(
            trigger=trigger, received_at__gte=now - timedelta(seconds=settings.TRIGGER_REPLAY_WINDOW_SECONDS))
        replay = Q(body_digest=digest) | (Q(delivery_id=delivery_id) if delivery_id else Q(pk__in=[]))
        if recent.filter(replay).exists():
            raise ApplicationError("This delivery was already received (same delivery id or same body within "
                                   f"{settings.TRIGGER_REPLAY_WINDOW_SECONDS} s); it starts nothing.",
                                   code="replayed_delivery", status=409)
        limit = settings.TRIGGER_MAX_PER_MINUTE
        if limit > 0 and TriggerDelivery.objects.filter(
                trigger=trigger, received_at__gte=now - timedelta(seconds=60)).count() >= limit:
            raise ApplicationError(f"This trigger takes at most {limit} calls a minute; try again later.",
                                   code="rate_limited", status=429, details={"limit_per_minute": limit})
        agent = trigger.agent
        run = agent_message_send(agent=agent, message=trigger_message(agent, payload),
                                 trigger=AgentRun.Trigger.WEBHOOK)
        run.metadata = {**run.metadata, "trigger_id": str(trigger.pk), "delivery_id": delivery_id or None}
        run.save(update_fields=["metadata"])
        TriggerDelivery.objects.create(trigger=trigger, delivery_id=delivery_id, body_digest=digest, run=run)
        AgentTrigger.objects.filter(pk=trigger.pk).update(last_fired_at=now)
        TriggerDelivery.objects.filter(
            trigger=trigger, received_at__lt=now - timedelta(seconds=max(settings.TRIGGER_REPLAY_WINDOW_SECONDS,
                                                                         60))).delete()
    agent_run_queue(run=run)
    return run


def trigger_message(agent: Agent, payload: str) -> str:
    """The run's input: the agent's workflow, then the webhook's payload as data to act on."""
    task = agent.workflow or agent.metadata.get("user_prompt", "")
    return f"{task}\n\nA webhook delivered this payload; act on it:\n{payload}".strip()
