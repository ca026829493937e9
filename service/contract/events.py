"""Everything the relay publishes (contract §4), as CloudEvents 1.0 structured JSON. Pure.

Each event's ``data`` is a pydantic model (the AsyncAPI schemas are generated from them).
Values read from MsgFlash responses are sanitised first: a surprising response must still
yield a well-formed event, never a crash after MsgFlash already accepted the command.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel

from service.contract.campaigns import CreateCampaignData
from service.contract.commands import (
    DEFAULT_ACCOUNT,
    Command,
    CommandIdentity,
    CommandType,
    provider_of,
)
from service.contract.errors import ErrorInfo
from service.contract.event_data import (
    AppliedLimits,
    Audience,
    CampaignCreatedData,
    ErrorData,
    EventEnvelope,
    FailureData,
    MessageResultData,
    QuotaExhaustedData,
    SafetySubject,
    SafetyWarningData,
    WebhookData,
)
from service.contract.messages import MessageData, ScheduleMessageData
from service.contract.wire import utc_millis

EVENT_SOURCE = "msgflash-relay"
WEBHOOK_TYPE_PREFIX = "msgflash.webhook."
# The webhook events MsgFlash documents; anything else is published as ``webhook.unknown``.
WEBHOOK_EVENTS = frozenset(
    {
        "instance.connected",
        "instance.disconnected",
        "message.sent",
        "message.delivered",
        "message.read",
        "message.failed",
        "message.received",
    }
)
UNKNOWN_WEBHOOK = "unknown"


class EventType(StrEnum):
    MESSAGE_SCHEDULED = "msgflash.message.scheduled"
    MESSAGE_SENT = "msgflash.message.sent"
    MESSAGE_FAILED = "msgflash.message.failed"
    CAMPAIGN_CREATED = "msgflash.campaign.created"
    CAMPAIGN_FAILED = "msgflash.campaign.failed"
    SAFETY_WARNING = "msgflash.safety.warning"
    QUOTA_EXHAUSTED = "msgflash.quota.exhausted"
    TETHER_CAMPAIGN_CREATED = "tether.campaign.created"
    TETHER_CAMPAIGN_FAILED = "tether.campaign.failed"


def routing_key_for(event_type: str) -> str:
    """Routing key on ``msgflash.events``: the type without its ``msgflash.`` prefix (Tether
    events keep theirs: ``tether.campaign.created``)."""
    return event_type.removeprefix("msgflash.")


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """A built event: publish ``body`` under ``routing_key`` (reply_to is the publisher's job)."""

    id: str
    type: str
    routing_key: str
    body: bytes  # CloudEvents 1.0 structured JSON, UTF-8


# --- builders -----------------------------------------------------------------------------
def message_result_event(
    command: Command,
    response: Mapping[str, Any],
    *,
    instance_id: str,
    attempts: int,
    event_id: str | None = None,
    now: datetime | None = None,
) -> OutgoingEvent:
    """``message.scheduled`` / ``message.sent`` from the ``data`` of MsgFlash's 201 answer."""
    data = command.data
    if not isinstance(data, MessageData):
        raise ValueError(f"{command.type} is not a message command")
    scheduled_at = utc_millis(data.scheduled_at) if isinstance(data, ScheduleMessageData) else None
    message_id = _text(response.get("id"))
    result = MessageResultData(
        request_id=command.id,
        request_source=command.source,
        message_id=message_id,
        status=_text(response.get("status")),
        instance_id=instance_id,
        to=data.to,
        scheduled_at=scheduled_at,
        attempts=attempts,
        warnings=_texts(response.get("warnings")),
    )
    event_type = EventType.MESSAGE_SCHEDULED if scheduled_at else EventType.MESSAGE_SENT
    return build_event(
        event_type, result, message_id, command.traceparent, event_id, now, account=command.account
    )


def campaign_created_event(
    command: Command,
    response: Mapping[str, Any],
    *,
    instance_id: str,
    attempts: int,
    event_id: str | None = None,
    now: datetime | None = None,
) -> OutgoingEvent:
    """``campaign.created`` from the ``data`` of MsgFlash's 201 answer."""
    data = command.data
    if not isinstance(data, CreateCampaignData):
        raise ValueError(f"{command.type} is not a campaign command")
    campaign_id = _text(response.get("id"))
    created = CampaignCreatedData(
        request_id=command.id,
        request_source=command.source,
        campaign_id=campaign_id,
        status=_text(response.get("status")),
        instance_id=instance_id,
        schedule=utc_millis(data.schedule),
        attempts=attempts,
    )
    return build_event(
        EventType.CAMPAIGN_CREATED,
        created,
        campaign_id,
        command.traceparent,
        event_id,
        now,
        account=command.account,
    )


def failure_event(
    identity: CommandIdentity,
    error: ErrorInfo,
    *,
    attempts: int,
    event_id: str | None = None,
    now: datetime | None = None,
) -> OutgoingEvent:
    """``tether.campaign.failed`` for Tether commands, ``campaign.failed`` for MsgFlash campaign
    commands, ``message.failed`` for all others (even commands of unknown type, whose producer
    still deserves an answer)."""
    failure = FailureData(
        request_id=identity.id,
        request_source=identity.source,
        error=ErrorData(
            code=error.code,
            message=error.message,
            http_status=error.http_status,
            retryable=error.retryable,
            details=tuple(problem.as_dict() for problem in error.details) or None,
        ),
        attempts=attempts,
    )
    return build_event(
        _failure_type(identity.type), failure, None, None, event_id, now, account=identity.account
    )


def _failure_type(command_type: str | None) -> EventType:
    if command_type == CommandType.CREATE_CAMPAIGN:
        return EventType.CAMPAIGN_FAILED
    if provider_of(command_type) == "tether":
        return EventType.TETHER_CAMPAIGN_FAILED
    return EventType.MESSAGE_FAILED


def safety_warning_event(
    command: Command,
    response: Mapping[str, Any],
    *,
    instance_id: str,
    health: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    now: datetime | None = None,
) -> OutgoingEvent | None:
    """``safety.warning`` when MsgFlash said ``warn`` or listed warnings; else None.

    ``health`` is the instance health a campaign pre-flight read: its warm-up caps stand in
    for ``appliedLimits`` when the response gives none, and its recommendations are added.
    """
    safety = _mapping(response.get("safety"))
    warnings = _texts(response.get("warnings"))
    if safety.get("decision") != "warn" and not warnings:
        return None
    health = health or {}
    subject_id = _text(response.get("id"))
    score = _number(safety.get("score"))
    warning = SafetyWarningData(
        request_id=command.id,
        request_source=command.source,
        subject=SafetySubject(kind="campaign" if command.is_campaign else "message", id=subject_id),
        instance_id=instance_id,
        decision=_text(safety.get("decision")),
        risk_level=_text(safety.get("riskLevel")),
        score=score if score is not None else _number(health.get("safetyScore")),
        state=_text(safety.get("state")) or _text(health.get("safetyState")),
        warnings=warnings,
        reasons=_texts(safety.get("reasons")),
        recommendations=tuple(
            dict.fromkeys(
                _texts(safety.get("recommendations")) + _texts(health.get("recommendations"))
            )
        ),
        applied_limits=AppliedLimits.pick(safety.get("appliedLimits"))
        or AppliedLimits.pick(health.get("warmupPolicy")),
        audience=Audience.pick(safety.get("audience")),
    )
    return build_event(
        EventType.SAFETY_WARNING,
        warning,
        subject_id,
        command.traceparent,
        event_id,
        now,
        account=command.account,
    )


class WebhookIdentity(NamedTuple):
    """What identifies one webhook delivery, for dedupe: (event, messageId, status)."""

    event: str | None
    message_id: str | None
    status: str | None


def webhook_identity(payload: Mapping[str, Any]) -> WebhookIdentity:
    """Reads both documented shapes: flat (``{event, messageId, status, ...}``, the guide) and
    nested (``{event, data: {messageId, status}}``, the fundamentals page)."""
    nested = payload.get("data")
    fields = nested if isinstance(nested, Mapping) else payload
    return WebhookIdentity(
        event=_text(payload.get("event")),
        message_id=_text(fields.get("messageId")) or _text(payload.get("messageId")),
        status=_text(fields.get("status")) or _text(payload.get("status")),
    )


def webhook_event(
    payload: Mapping[str, Any],
    correlation: Correlation | None,
    *,
    account: str = DEFAULT_ACCOUNT,
    event_id: str | None = None,
    now: datetime | None = None,
) -> OutgoingEvent:
    """``msgflash.webhook.<event>`` carrying the payload unchanged, and the event name as sent
    (the only trace of it in the type of a ``webhook.unknown`` event). Never raises."""
    identity = webhook_identity(payload)
    event_type = WEBHOOK_TYPE_PREFIX + webhook_event_name(identity.event)
    data = WebhookData(
        request_id=correlation.request_id if correlation else None,
        request_source=correlation.request_source if correlation else None,
        event=identity.event,
        payload=dict(payload),
    )
    return build_event(event_type, data, identity.message_id, None, event_id, now, account=account)


def webhook_event_name(event: str | None) -> str:
    """``message.delivered`` as is (case aside); any name MsgFlash does not document, and a
    missing one, is ``unknown``: routing keys and metric labels stay a fixed, small set."""
    name = (event or "").strip().lower()
    return name if name in WEBHOOK_EVENTS else UNKNOWN_WEBHOOK


def quota_exhausted_event(
    *,
    code: str,
    key_fingerprint: str,
    message: str,
    http_status: int | None = None,
    probe_seconds: float | None = None,
    next_probe_at: datetime | None = None,
    max_wait_seconds: float | None = None,
    account: str = DEFAULT_ACCOUNT,
    event_id: str | None = None,
    now: datetime | None = None,
) -> OutgoingEvent:
    """``quota.exhausted``: a monthly quota of the API key ran out (not tied to one command)."""
    data = QuotaExhaustedData(
        code=code,
        key_fingerprint=key_fingerprint,
        message=message,
        http_status=http_status,
        probe_seconds=probe_seconds,
        next_probe_at=utc_millis(next_probe_at) if next_probe_at is not None else None,
        max_wait_seconds=max_wait_seconds,
    )
    return build_event(
        EventType.QUOTA_EXHAUSTED, data, key_fingerprint, None, event_id, now, account=account
    )


def decode_event(body: bytes) -> dict[str, Any]:
    """An event body back to a dict (tests and tools)."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("an event body is a JSON object")
    return document


def build_event(
    event_type: str,
    data: BaseModel,
    subject: str | None,
    traceparent: str | None,
    event_id: str | None,
    now: datetime | None,
    *,
    account: str | None = None,
) -> OutgoingEvent:
    """``account`` is the CloudEvents extension attribute (contract §7): every event made for a
    command carries the command's account, and a webhook event the account it came for."""
    identifier = event_id or str(uuid.uuid4())
    envelope: EventEnvelope[BaseModel] = EventEnvelope(
        specversion="1.0",
        id=identifier,
        source=EVENT_SOURCE,
        type=str(event_type),
        time=utc_millis(now or datetime.now(UTC)),
        datacontenttype="application/json",
        subject=subject,
        traceparent=traceparent,
        account=account,
        data=data,
    )
    body = envelope.model_dump_json(by_alias=True, exclude_none=True).encode()
    return OutgoingEvent(identifier, str(event_type), routing_key_for(event_type), body)


# --- reading MsgFlash responses defensively -----------------------------------------------
def _text(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _number(value: object) -> int | float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class Correlation:
    """What the relay remembers about a MsgFlash message it created; ``traceparent`` names the
    command's span, for the message's webhooks to link to."""

    request_id: str
    request_source: str
    traceparent: str | None = None
