"""Outgoing events (contract §4): exact shapes, types, routing keys and correlation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from hypothesis import given

from service.contract.commands import Command, CommandIdentity, RawCommand, parse_command
from service.contract.errors import (
    INSTANCE_NOT_FOUND,
    ErrorInfo,
    FieldProblem,
    InstanceResolutionError,
    InvalidCommand,
    MsgFlashError,
    RelayError,
    error_info,
)
from service.contract.events import (
    EVENT_SOURCE,
    Correlation,
    OutgoingEvent,
    campaign_created_event,
    decode_event,
    failure_event,
    message_result_event,
    quota_exhausted_event,
    safety_warning_event,
    webhook_event,
    webhook_event_name,
    webhook_identity,
)
from service.contract.schemas import event_schemas
from tests.unit import strategies as s

NOW = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)
INSTANCE = "3f2b1c9e-8d4a-4e6b-9c1d-2a3b4c5d6e7f"
TEXT = {"type": "text", "text": "Hello"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SCHEMAS = event_schemas()
VALIDATORS = {kind: jsonschema.Draft202012Validator(schema) for kind, schema in SCHEMAS.items()}


def command(command_type: str, data: dict[str, Any], **attributes: Any) -> Command:
    envelope = s.envelope(command_type, data, id="req-1", source="/orders", **attributes)
    return parse_command(RawCommand(body=json.dumps(envelope).encode()), max_bytes=1 << 20)


SCHEDULE = command(
    s.SCHEDULE,
    {"to": "+33612345678", "scheduledAt": "2026-12-01T09:00:00+01:00", "message": TEXT},
    traceparent=TRACEPARENT,
)
SEND = command(s.SEND, {"to": "+33612345678", "message": TEXT})
CAMPAIGN = command(
    s.CAMPAIGN,
    {
        "name": "Promo",
        "schedule": "2026-12-01T08:00:00Z",
        "recipients": {"type": "all"},
        "message": TEXT,
    },
)


def decoded(event: OutgoingEvent) -> dict[str, Any]:
    document = decode_event(event.body)
    schema_key = (
        "msgflash.webhook.<event>" if event.type.startswith("msgflash.webhook.") else event.type
    )
    VALIDATORS[schema_key].validate(document)
    return document


def envelope_of(event_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "msgflash-relay",
        "type": event_type,
        "time": "2026-11-30T10:00:00.123Z",
        "datacontenttype": "application/json",
        "account": "default",
        **extra,
    }


# --- results ------------------------------------------------------------------------------
def test_a_scheduled_message_event_has_the_contract_shape() -> None:
    response = {"id": "msg-9", "status": "queued", "warnings": ["instance warming up"]}
    event = message_result_event(
        SCHEDULE, response, instance_id=INSTANCE, attempts=2, event_id="evt-1", now=NOW
    )

    assert (event.id, event.type, event.routing_key) == (
        "evt-1",
        "msgflash.message.scheduled",
        "message.scheduled",
    )
    assert decoded(event) == envelope_of(
        "msgflash.message.scheduled",
        subject="msg-9",
        traceparent=TRACEPARENT,
        data={
            "requestId": "req-1",
            "requestSource": "/orders",
            "messageId": "msg-9",
            "status": "queued",
            "instanceId": INSTANCE,
            "to": "+33612345678",
            "scheduledAt": "2026-12-01T08:00:00.000Z",
            "attempts": 2,
            "warnings": ["instance warming up"],
        },
    )


def test_a_sent_message_event_has_no_scheduled_at_and_empty_warnings() -> None:
    event = message_result_event(
        SEND, {"id": "msg-9", "status": "queued"}, instance_id=INSTANCE, attempts=1, now=NOW
    )
    assert (event.type, event.routing_key) == ("msgflash.message.sent", "message.sent")
    data = decoded(event)["data"]
    assert "scheduledAt" not in data
    assert data["warnings"] == []
    assert "traceparent" not in decoded(event)


def test_a_campaign_created_event_has_the_contract_shape() -> None:
    response = {"id": "cmp-3", "status": "scheduled", "safety": {"decision": "allow"}}
    event = campaign_created_event(
        CAMPAIGN, response, instance_id=INSTANCE, attempts=1, event_id="evt-1", now=NOW
    )
    assert event.routing_key == "campaign.created"
    assert decoded(event) == envelope_of(
        "msgflash.campaign.created",
        subject="cmp-3",
        data={
            "requestId": "req-1",
            "requestSource": "/orders",
            "campaignId": "cmp-3",
            "status": "scheduled",
            "instanceId": INSTANCE,
            "schedule": "2026-12-01T08:00:00.000Z",
            "attempts": 1,
        },
    )


def test_result_builders_refuse_a_command_of_the_other_kind() -> None:
    with pytest.raises(ValueError, match="campaign"):
        campaign_created_event(SEND, {}, instance_id=INSTANCE, attempts=1)
    with pytest.raises(ValueError, match="message"):
        message_result_event(CAMPAIGN, {}, instance_id=INSTANCE, attempts=1)


def test_a_surprising_response_still_yields_a_well_formed_event() -> None:
    response = {"id": None, "status": 3.5, "warnings": "not a list"}
    data = decoded(message_result_event(SEND, response, instance_id=INSTANCE, attempts=1))["data"]
    assert "messageId" not in data and "status" not in data
    assert data["warnings"] == []


# --- failures -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command_type", "event_type"),
    [
        (s.SCHEDULE, "msgflash.message.failed"),
        (s.SEND, "msgflash.message.failed"),
        (s.CAMPAIGN, "msgflash.campaign.failed"),
        ("msgflash.bogus", "msgflash.message.failed"),
        (None, "msgflash.message.failed"),
    ],
)
def test_failures_go_to_campaign_failed_only_for_campaign_commands(
    command_type: str | None, event_type: str
) -> None:
    identity = CommandIdentity(id="req-1", source="/orders", type=command_type)
    event = failure_event(identity, ErrorInfo("NOT_FOUND", "gone"), attempts=1)
    assert event.type == event_type
    assert event.routing_key == event_type.removeprefix("msgflash.")


def test_a_failure_event_carries_the_error_and_attempts() -> None:
    error = error_info(MsgFlashError("TEMPLATE_INVALID", "bad placeholder", http_status=400))
    event = failure_event(SEND.identity, error, attempts=3, event_id="evt-1", now=NOW)
    assert decoded(event) == envelope_of(
        "msgflash.message.failed",
        data={
            "requestId": "req-1",
            "requestSource": "/orders",
            "error": {
                "code": "TEMPLATE_INVALID",
                "message": "bad placeholder",
                "httpStatus": 400,
                "retryable": False,
            },
            "attempts": 3,
        },
    )


def test_an_invalid_command_failure_lists_each_field_problem() -> None:
    invalid = InvalidCommand(
        "invalid command", (FieldProblem("data.to", "bad"), FieldProblem("data", "both"))
    )
    identity = CommandIdentity(id=None, source=None, type=None)
    data = decoded(failure_event(identity, error_info(invalid), attempts=0))["data"]
    assert data == {
        "error": {
            "code": "INVALID_EVENT",
            "message": "invalid command",
            "retryable": False,
            "details": [
                {"field": "data.to", "message": "bad"},
                {"field": "data", "message": "both"},
            ],
        },
        "attempts": 0,
    }


def test_a_field_problem_carries_its_extra_values_into_the_failure_event() -> None:
    problem = FieldProblem(
        "data.scheduleDate",
        "Only 1 SMS remaining",
        (("nextAvailableDate", "2030-05-21"), ("field", "not this one")),
    )
    identity = CommandIdentity(id=None, source=None, type=None)
    info = ErrorInfo("TETHER_DAILY_QUOTA_EXCEEDED", "no room", details=(problem,))
    data = decoded(failure_event(identity, info, attempts=0))["data"]
    assert data["error"]["details"] == [
        {
            "field": "data.scheduleDate",
            "message": "Only 1 SMS remaining",
            "nextAvailableDate": "2030-05-21",
        }
    ]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            MsgFlashError("API_RATE_LIMIT_EXCEEDED", "slow down", http_status=429),
            ErrorInfo("API_RATE_LIMIT_EXCEEDED", "slow down", 429, True),
        ),
        (
            MsgFlashError(
                "VALIDATION_ERROR", "bad", http_status=400, details=(FieldProblem("to", "E.164"),)
            ),
            ErrorInfo("VALIDATION_ERROR", "bad", 400, False, (FieldProblem("to", "E.164"),)),
        ),
        (
            InstanceResolutionError("no instance named main", code=INSTANCE_NOT_FOUND),
            ErrorInfo(INSTANCE_NOT_FOUND, "no instance named main"),
        ),
        (
            InvalidCommand("invalid", (FieldProblem("type", "unknown"),)),
            ErrorInfo("INVALID_EVENT", "invalid", details=(FieldProblem("type", "unknown"),)),
        ),
        (
            RelayError("broker down", code="BROKER_UNAVAILABLE"),
            ErrorInfo("BROKER_UNAVAILABLE", "broker down", retryable=True),
        ),
    ],
)
def test_error_info_is_read_from_every_kind_of_relay_error(
    exc: RelayError, expected: ErrorInfo
) -> None:
    assert error_info(exc) == expected


# --- safety warnings ----------------------------------------------------------------------
def test_no_safety_warning_when_msgflash_allows_without_warnings() -> None:
    response = {"id": "msg-9", "warnings": [], "safety": {"decision": "allow", "score": 90}}
    assert safety_warning_event(SEND, response, instance_id=INSTANCE) is None
    assert safety_warning_event(SEND, {"id": "msg-9"}, instance_id=INSTANCE) is None


def test_a_warn_decision_is_published_with_the_whole_safety_block() -> None:
    response = {
        "id": "msg-9",
        "warnings": [],
        "safety": {
            "decision": "warn",
            "riskLevel": "medium",
            "state": "warming",
            "score": 56,
            "reasons": ["young instance"],
            "recommendations": ["send to warm contacts"],
        },
    }
    event = safety_warning_event(SEND, response, instance_id=INSTANCE, event_id="evt-1", now=NOW)
    assert event is not None
    assert event.routing_key == "safety.warning"
    assert decoded(event) == envelope_of(
        "msgflash.safety.warning",
        subject="msg-9",
        data={
            "requestId": "req-1",
            "requestSource": "/orders",
            "subject": {"kind": "message", "id": "msg-9"},
            "instanceId": INSTANCE,
            "decision": "warn",
            "riskLevel": "medium",
            "score": 56,
            "state": "warming",
            "warnings": [],
            "reasons": ["young instance"],
            "recommendations": ["send to warm contacts"],
        },
    )


def test_warnings_alone_are_enough_for_a_safety_warning() -> None:
    response = {"id": "msg-9", "warnings": ["instance in warmup"], "safety": {"decision": "allow"}}
    event = safety_warning_event(SEND, response, instance_id=INSTANCE)
    assert event is not None
    assert decoded(event)["data"]["warnings"] == ["instance in warmup"]


def test_a_campaign_warning_carries_applied_limits_and_audience() -> None:
    response = {
        "id": "cmp-3",
        "safety": {
            "decision": "warn",
            "appliedLimits": {"maxCampaignRecipients": 100, "maxColdRatio": 0.4, "x": "y"},
            "audience": {"totalRecipients": 250, "coldRatio": 0.62, "warmCount": True},
        },
    }
    event = safety_warning_event(CAMPAIGN, response, instance_id=INSTANCE)
    assert event is not None
    data = decoded(event)["data"]
    assert data["subject"] == {"kind": "campaign", "id": "cmp-3"}
    assert data["appliedLimits"] == {"maxCampaignRecipients": 100, "maxColdRatio": 0.4}
    assert data["audience"] == {"totalRecipients": 250, "coldRatio": 0.62}


HEALTH = {
    "safetyState": "warming",
    "safetyScore": 41,
    "warmupPolicy": {
        "state": "warming",
        "hourlyOutboundCap": 25,
        "dailyOutboundCap": 100,
        "maxCampaignRecipients": 100,
        "maxColdRatio": 0.4,
    },
    "recommendations": ["keep campaigns under 100 recipients", "send to warm contacts"],
}


def test_preflight_health_fills_missing_limits_and_adds_recommendations() -> None:
    response = {
        "id": "cmp-3",
        "safety": {"decision": "warn", "recommendations": ["send to warm contacts"]},
    }
    event = safety_warning_event(CAMPAIGN, response, instance_id=INSTANCE, health=HEALTH)
    assert event is not None
    data = decoded(event)["data"]
    assert data["appliedLimits"] == {
        "hourlyOutboundCap": 25,
        "dailyOutboundCap": 100,
        "maxCampaignRecipients": 100,
        "maxColdRatio": 0.4,
    }
    assert data["recommendations"] == [
        "send to warm contacts",
        "keep campaigns under 100 recipients",
    ]
    assert (data["state"], data["score"]) == ("warming", 41)


def test_limits_msgflash_applied_win_over_preflight_caps() -> None:
    response = {
        "id": "cmp-3",
        "safety": {"decision": "warn", "appliedLimits": {"dailyOutboundCap": 50}},
    }
    event = safety_warning_event(CAMPAIGN, response, instance_id=INSTANCE, health=HEALTH)
    assert event is not None
    assert decoded(event)["data"]["appliedLimits"] == {"dailyOutboundCap": 50}


def test_preflight_health_alone_does_not_raise_a_warning() -> None:
    response = {"id": "cmp-3", "safety": {"decision": "allow"}}
    assert safety_warning_event(CAMPAIGN, response, instance_id=INSTANCE, health=HEALTH) is None


# --- webhooks -----------------------------------------------------------------------------
FLAT = {
    "event": "message.delivered",
    "instanceId": INSTANCE,
    "messageId": "msg-9",
    "providerMessageId": "BAE5D1A2B3C4D5E6",
    "to": "+33612345678",
    "status": "delivered",
    "timestamp": "2026-04-01T10:00:05.000Z",
}
NESTED = {"event": "message.read", "data": {"messageId": "msg-9", "status": "read", "error": None}}


def test_a_flat_webhook_is_republished_unchanged_with_its_correlation() -> None:
    event = webhook_event(FLAT, Correlation("req-1", "/orders"), event_id="evt-1", now=NOW)
    assert (event.type, event.routing_key) == (
        "msgflash.webhook.message.delivered",
        "webhook.message.delivered",
    )
    assert decoded(event) == envelope_of(
        "msgflash.webhook.message.delivered",
        subject="msg-9",
        data={
            "requestId": "req-1",
            "requestSource": "/orders",
            "event": "message.delivered",
            "payload": FLAT,
        },
    )


def test_a_nested_webhook_keeps_its_nulls_and_has_no_request_when_unknown() -> None:
    event = webhook_event(NESTED, None, now=NOW)
    document = decoded(event)
    assert event.routing_key == "webhook.message.read"
    assert document["subject"] == "msg-9"
    assert document["data"] == {"event": "message.read", "payload": NESTED}


@pytest.mark.parametrize(
    ("payload", "identity"),
    [
        (FLAT, ("message.delivered", "msg-9", "delivered")),
        (NESTED, ("message.read", "msg-9", "read")),
        (
            {"event": "instance.connected", "instanceId": INSTANCE},
            ("instance.connected", None, None),
        ),
        ({}, (None, None, None)),
    ],
)
def test_webhook_identity_reads_flat_and_nested_shapes(
    payload: dict[str, Any], identity: tuple[str | None, ...]
) -> None:
    assert tuple(webhook_identity(payload)) == identity


@pytest.mark.parametrize(
    ("name", "routed"),
    [
        ("message.delivered", "message.delivered"),
        ("Message.Delivered", "message.delivered"),
        ("message.received", "message.received"),
        ("instance.disconnected", "instance.disconnected"),
        ("message.#", "unknown"),
        ("__main__", "unknown"),
        ("message.delivered.x", "unknown"),
        ("a" * 200, "unknown"),
        (None, "unknown"),
        ("...", "unknown"),
    ],
)
def test_only_documented_webhook_events_become_routing_keys(name: str | None, routed: str) -> None:
    assert webhook_event_name(name) == routed


def test_an_undocumented_webhook_event_is_published_as_unknown_with_its_name() -> None:
    payload = {**FLAT, "event": "__main__"}
    event = webhook_event(payload, None, now=NOW)
    assert (event.type, event.routing_key) == ("msgflash.webhook.unknown", "webhook.unknown")
    assert decoded(event)["data"] == {"event": "__main__", "payload": payload}


# --- quota --------------------------------------------------------------------------------
def test_quota_exhausted_names_the_key_by_fingerprint_only() -> None:
    event = quota_exhausted_event(
        code="MONTHLY_OUTBOUND_QUOTA_EXCEEDED",
        key_fingerprint="a1b2c3",
        message="monthly outbound quota used up",
        event_id="evt-1",
        now=NOW,
    )
    assert event.routing_key == "quota.exhausted"
    assert decoded(event) == envelope_of(
        "msgflash.quota.exhausted",
        subject="a1b2c3",
        data={
            "code": "MONTHLY_OUTBOUND_QUOTA_EXCEEDED",
            "keyFingerprint": "a1b2c3",
            "message": "monthly outbound quota used up",
        },
    )


# --- every event --------------------------------------------------------------------------
def test_events_get_a_fresh_uuid4_id_and_the_current_utc_time_by_default() -> None:
    before = datetime.now(UTC)
    first = failure_event(SEND.identity, ErrorInfo("X", "y"), attempts=1)
    second = failure_event(SEND.identity, ErrorInfo("X", "y"), attempts=1)
    document = decoded(first)

    assert first.id != second.id
    assert uuid.UUID(first.id).version == 4
    assert document["id"] == first.id
    assert document["source"] == EVENT_SOURCE
    sent_at = datetime.fromisoformat(document["time"])
    assert before - timedelta(milliseconds=1) <= sent_at <= datetime.now(UTC)
    assert document["time"].endswith("Z")


def test_event_time_is_utc_whatever_zone_now_is_given_in() -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    event = failure_event(SEND.identity, ErrorInfo("X", "y"), attempts=1, now=now)
    assert decoded(event)["time"] == "2026-12-01T08:00:00.000Z"


def test_decode_event_refuses_a_body_that_is_not_an_object() -> None:
    with pytest.raises(ValueError, match="object"):
        decode_event(b"[1]")


def test_every_event_type_has_a_schema() -> None:
    assert set(SCHEMAS) == {
        "msgflash.message.scheduled",
        "msgflash.message.sent",
        "msgflash.message.failed",
        "msgflash.campaign.created",
        "msgflash.campaign.failed",
        "msgflash.safety.warning",
        "msgflash.quota.exhausted",
        "msgflash.webhook.<event>",
        "tether.campaign.created",
        "tether.campaign.failed",
    }
    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)


@s.PROPERTY_SETTINGS
@given(envelope=s.valid_commands())
def test_every_command_yields_result_and_failure_events_that_match_their_schemas(
    envelope: dict[str, Any],
) -> None:
    parsed = parse_command(RawCommand(body=json.dumps(envelope).encode()), max_bytes=1 << 20)
    response = {"id": "x-1", "status": "queued", "safety": {"decision": "warn", "score": 50}}
    if parsed.is_campaign:
        result = campaign_created_event(parsed, response, instance_id=INSTANCE, attempts=1)
    else:
        result = message_result_event(parsed, response, instance_id=INSTANCE, attempts=1)
    warning = safety_warning_event(parsed, response, instance_id=INSTANCE)
    failure = failure_event(parsed.identity, ErrorInfo("NOT_FOUND", "gone"), attempts=1)
    assert warning is not None
    for event in (result, warning, failure):
        data = decoded(event)["data"]
        assert (data["requestId"], data["requestSource"]) == (parsed.id, parsed.source)


def test_every_event_for_a_command_carries_its_account() -> None:
    acme = SEND.model_copy(update={"account": "acme"})
    sent = message_result_event(acme, {"id": "m1", "status": "queued"}, instance_id="i", attempts=1)
    failed = failure_event(acme.identity, ErrorInfo("X", "y"), attempts=0)
    warned = safety_warning_event(
        acme, {"id": "m1", "safety": {"decision": "warn"}}, instance_id="i"
    )
    assert warned is not None
    assert {decode_event(e.body)["account"] for e in (sent, failed, warned)} == {"acme"}
