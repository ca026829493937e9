"""The ``data`` of every outgoing event, and the CloudEvents envelope around it (contract §4).

Pydantic models so the AsyncAPI schemas are generated from the very types that serialise
the events. Optional fields default to None and are left out of the JSON, never sent as null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from service.contract.errors import RELAY_ERROR_CODES

Number = int | float


class EventModel(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class RequestRef(EventModel):
    """The command an event answers (contract §4): its ``id`` and ``source``."""

    request_id: str | None = None
    request_source: str | None = None


class MessageResultData(RequestRef):
    message_id: str | None = None
    status: str | None = None
    instance_id: str
    to: str
    scheduled_at: str | None = None  # message.scheduled only
    attempts: int
    warnings: tuple[str, ...]


class CampaignCreatedData(RequestRef):
    campaign_id: str | None = None
    status: str | None = None
    instance_id: str
    schedule: str
    attempts: int


class TetherSegmentData(EventModel):
    """One of the campaigns a ``quota: segment`` command was split into."""

    campaign_id: str | None = None
    schedule_date: str | None = None
    recipients: int


class TetherCampaignCreatedData(RequestRef):
    campaign_id: str | None = None
    status: str | None = None
    schedule_date: str | None = None
    recipients: int
    attempts: int
    segments: tuple[TetherSegmentData, ...] | None = None  # only when split over days


class ErrorData(EventModel):
    code: str = Field(
        description="The relay's own codes, or the provider's passed through unchanged",
        examples=list(RELAY_ERROR_CODES),
    )
    message: str
    http_status: int | None = None
    retryable: bool
    details: tuple[dict[str, Any], ...] | None = None


class FailureData(RequestRef):
    error: ErrorData
    attempts: int


class SafetySubject(EventModel):
    kind: Literal["message", "campaign"]
    id: str | None = None


class NumbersModel(EventModel):
    """A group of optional numbers read from a MsgFlash response that may hold anything."""

    @classmethod
    def pick(cls, value: object) -> Self | None:
        """The numeric fields of this model found in ``value``; None when there are none."""
        if not isinstance(value, Mapping):
            return None
        found = {
            name: value[field.alias or name]
            for name, field in cls.model_fields.items()
            if _is_number(value.get(field.alias or name))
        }
        return cls(**found) if found else None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class AppliedLimits(NumbersModel):
    hourly_outbound_cap: Number | None = None
    daily_outbound_cap: Number | None = None
    max_campaign_recipients: Number | None = None
    max_cold_ratio: Number | None = None


class Audience(NumbersModel):
    total_recipients: Number | None = None
    warm_count: Number | None = None
    cold_count: Number | None = None
    unknown_count: Number | None = None
    blocked_count: Number | None = None
    cold_ratio: Number | None = None
    warm_ratio: Number | None = None
    unknown_ratio: Number | None = None


class SafetyWarningData(RequestRef):
    subject: SafetySubject
    instance_id: str
    decision: str | None = None
    risk_level: str | None = None
    score: Number | None = None
    state: str | None = None
    warnings: tuple[str, ...]
    reasons: tuple[str, ...]
    recommendations: tuple[str, ...]
    applied_limits: AppliedLimits | None = None
    audience: Audience | None = None


class WebhookData(RequestRef):
    event: str | None = None  # the `event` of the payload as MsgFlash sent it
    payload: dict[str, Any]  # the verified MsgFlash webhook body, unchanged


class QuotaExhaustedData(EventModel):
    """What a consumer of ``quota.exhausted`` needs to act: which key, which quota, when the
    relay tries again, and how long commands wait before they fail and are dead-lettered."""

    code: str
    key_fingerprint: str  # never the key itself
    message: str
    http_status: int | None = None
    probe_seconds: float | None = None  # the relay tries one call this often
    next_probe_at: str | None = None  # ISO 8601 UTC
    # A send waits this long (a schedule or campaign until its start time instead), then fails
    # with ``code`` and is dead-lettered, replayable with ``dlq replay --code <code>``.
    max_wait_seconds: float | None = None


DataT = TypeVar("DataT", bound=BaseModel)


class EventEnvelope(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 structured mode; optional attributes are omitted, never null."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"]
    id: str
    source: Literal["msgflash-relay"]
    type: str
    time: str
    datacontenttype: Literal["application/json"]
    subject: str | None = None
    traceparent: str | None = None  # the command's W3C trace context, carried through
    account: str | None = None  # extension attribute (contract §7): the command's account
    data: DataT
