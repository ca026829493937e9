"""Every kind of event the relay publishes, read back by the official CloudEvents SDK.

Consumers in other teams parse our events with it; if it refuses one, they lose it.
"""

from __future__ import annotations

import json

import pytest
from cloudevents.core.bindings import amqp as amqp_binding
from cloudevents.core.formats.json import JSONFormat

from service.contract.commands import CommandIdentity, RawCommand, parse_command
from service.contract.errors import ErrorInfo, FieldProblem
from service.contract.events import (
    Correlation,
    EventType,
    OutgoingEvent,
    campaign_created_event,
    failure_event,
    message_result_event,
    quota_exhausted_event,
    safety_warning_event,
    webhook_event,
)
from service.contract.tether_events import CreatedCampaign, tether_campaign_created_event
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from tests.unit.contract.test_events import CAMPAIGN, FLAT, SCHEDULE, SEND
from tests.unit.contract.test_tether import DATA, envelope

TETHER = parse_command(RawCommand(body=json.dumps(envelope(DATA)).encode()), max_bytes=65536)
WARN = {"id": "m1", "status": "queued", "safety": {"decision": "warn"}, "warnings": ["warming"]}


def every_event_kind() -> list[OutgoingEvent]:
    failure = ErrorInfo("INVALID_EVENT", "bad", details=(FieldProblem("data.to", "bad"),))
    warning = safety_warning_event(SEND, WARN, instance_id=INSTANCE_MAIN)
    assert warning is not None
    return [
        message_result_event(SCHEDULE, WARN, instance_id=INSTANCE_MAIN, attempts=1),
        message_result_event(SEND, WARN, instance_id=INSTANCE_MAIN, attempts=1),
        failure_event(CommandIdentity("c1", "urn:a", "msgflash.message.send"), failure, attempts=0),
        campaign_created_event(CAMPAIGN, {"id": "c9"}, instance_id=INSTANCE_MAIN, attempts=1),
        failure_event(CAMPAIGN.identity, failure, attempts=2),
        warning,
        quota_exhausted_event(
            code="MONTHLY_OUTBOUND_QUOTA_EXCEEDED", key_fingerprint="k", message="m"
        ),
        webhook_event(FLAT, Correlation("req-1", "urn:a")),
        webhook_event({**FLAT, "event": "__main__"}, None),
        tether_campaign_created_event(
            TETHER, (CreatedCampaign("a" * 24, "scheduled", None, 1),), attempts=1
        ),
        failure_event(TETHER.identity, failure, attempts=1),
    ]


def test_the_list_covers_every_event_type_and_both_webhook_forms() -> None:
    kinds = {event.type for event in every_event_kind()}
    assert set(EventType) <= kinds
    assert {"msgflash.webhook.message.delivered", "msgflash.webhook.unknown"} <= kinds


@pytest.mark.parametrize("event", every_event_kind(), ids=lambda e: e.type)
def test_the_sdk_reads_every_event_kind_as_published(event: OutgoingEvent) -> None:
    message = amqp_binding.AMQPMessage(
        properties={"content-type": "application/cloudevents+json"},
        application_properties={},
        application_data=event.body,
    )
    parsed = amqp_binding.from_amqp(message, JSONFormat())
    assert (parsed.get_id(), parsed.get_type(), parsed.get_source()) == (
        event.id,
        event.type,
        "msgflash-relay",
    )
    assert parsed.get_specversion() == "1.0"
    assert isinstance(parsed.get_data(), dict)
