"""Message commands end to end: real RabbitMQ, the real sandbox, a real relay."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from service.contract.amqp import Topology
from service.contract.wire import utc_millis
from service.providers.msgflash.sandbox.seed import (
    CONTACT_ANA,
    INSTANCE_MAIN,
    INSTANCE_WARMING,
    TEMPLATE_WELCOME,
)
from service.wiring.relay import Relay
from tests.conftest import EventTap, Producer, SandboxHandle, command, dead_letters, relay_log

TO = "+33612345678"

# (command message, exact MsgFlash payload fields expected besides instanceId/to)
DIRECT_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"type": "text", "text": "Hi"}, {"type": "text", "text": "Hi"}),
    (
        {"type": "image", "mediaUrl": "https://example.com/a.png", "caption": "A"},
        {"type": "image", "mediaUrl": "https://example.com/a.png", "text": "A"},
    ),
    (
        {"type": "video", "mediaUrl": "https://example.com/v.mp4"},
        {"type": "video", "mediaUrl": "https://example.com/v.mp4"},
    ),
    (
        {"type": "document", "mediaUrl": "https://example.com/d.pdf", "caption": "Invoice"},
        {"type": "document", "mediaUrl": "https://example.com/d.pdf", "text": "Invoice"},
    ),
    (
        {"type": "audio", "mediaUrl": "https://example.com/a.mp3"},
        {"type": "audio", "mediaUrl": "https://example.com/a.mp3"},
    ),
    (
        {"type": "voice_note", "mediaUrl": "https://example.com/n.ogg"},
        {"type": "voice_note", "mediaUrl": "https://example.com/n.ogg"},
    ),
    (
        {
            "type": "location",
            "latitude": 5.36,
            "longitude": -4.0083,
            "name": "HQ",
            "address": "Abidjan",
        },
        {
            "type": "location",
            "latitude": 5.36,
            "longitude": -4.0083,
            "locationName": "HQ",
            "locationAddress": "Abidjan",
        },
    ),
    ({"type": "contact", "contactId": CONTACT_ANA}, {"type": "contact", "contactId": CONTACT_ANA}),
    (
        {
            "type": "buttons",
            "title": "Order",
            "description": "Confirm?",
            "footer": "Shop",
            "buttons": [
                {"kind": "reply", "displayText": "Yes", "id": "yes"},
                {"kind": "url", "displayText": "Track", "url": "https://example.com/t"},
            ],
        },
        {
            "type": "buttons",
            "title": "Order",
            "description": "Confirm?",
            "footer": "Shop",
            "buttons": [
                {"title": "reply", "displayText": "Yes", "id": "yes"},
                {"title": "url", "displayText": "Track", "url": "https://example.com/t"},
            ],
        },
    ),
]


def _posts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["method"] == "POST"]


@pytest.mark.parametrize(("message", "expected"), DIRECT_CASES, ids=lambda v: v.get("type", ""))
async def test_each_direct_type_reaches_msgflash_as_documented(
    relay: Relay,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    message: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    cmd = command(data={"instanceId": INSTANCE_MAIN, "to": TO, "message": message})
    await producer.publish(cmd)

    (sent,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.sent")
    assert sent["data"]["requestId"] == cmd["id"]
    assert sent["data"]["requestSource"] == "tests"
    assert sent["data"]["instanceId"] == INSTANCE_MAIN
    assert sent["data"]["attempts"] == 1
    (request,) = _posts(await sandbox.requests("/api/v1/messages/send"))
    assert request["status"] == 201
    assert request["body"] == {"instanceId": INSTANCE_MAIN, "to": TO, **expected}


async def test_template_mode_sends_flat_variables(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    cmd = command(
        data={
            "instanceId": INSTANCE_MAIN,
            "to": TO,
            "template": {"id": TEMPLATE_WELCOME, "variables": {"firstName": "Ana"}},
        }
    )
    await producer.publish(cmd)

    (sent,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.sent")
    assert sent["data"]["status"] == "queued"
    (request,) = _posts(await sandbox.requests("/api/v1/messages/send"))
    assert request["body"] == {
        "instanceId": INSTANCE_MAIN,
        "to": TO,
        "templateId": TEMPLATE_WELCOME,
        "variables": {"firstName": "Ana"},
    }


async def test_schedule_goes_to_the_schedule_endpoint_with_utc_time(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    later = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    cmd = command(
        "msgflash.message.schedule",
        {
            "instanceId": INSTANCE_MAIN,
            "to": TO,
            "scheduledAt": later.astimezone(timezone(timedelta(hours=1))).isoformat(),
            "message": {"type": "text", "text": "Later"},
        },
    )
    await producer.publish(cmd)

    (scheduled,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.scheduled")
    assert scheduled["data"]["scheduledAt"] == utc_millis(later)
    assert scheduled["data"]["messageId"]
    (request,) = _posts(await sandbox.requests("/api/v1/messages/schedule"))
    assert request["body"]["scheduledAt"] == utc_millis(later)
    assert _posts(await sandbox.requests("/api/v1/messages/send")) == []


async def test_instance_is_resolved_by_name_and_by_wa_number(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    by_name = command(
        data={"instance": "warming", "to": TO, "message": {"type": "text", "text": "a"}}
    )
    by_number = command(
        data={"instance": "2250700000001", "to": TO, "message": {"type": "text", "text": "b"}}
    )
    await producer.publish(by_name)
    await producer.publish(by_number)

    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent", count=2)
    bodies = {
        r["body"]["text"]: r["body"]
        for r in _posts(await sandbox.requests("/api/v1/messages/send"))
    }
    assert bodies["a"]["instanceId"] == INSTANCE_WARMING
    assert bodies["b"]["instanceId"] == INSTANCE_MAIN


async def test_unknown_and_ambiguous_instances_fail_without_a_send(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    twin = {"name": "twin", "status": "connected", "safetyState": "stable", "business": False}
    await sandbox.admin(
        "POST",
        "/_sandbox/instances",
        {**twin, "id": str(uuid.uuid4()), "waNumber": "+2250700000098"},
    )
    await sandbox.admin(
        "POST",
        "/_sandbox/instances",
        {**twin, "id": str(uuid.uuid4()), "waNumber": "+2250700000099"},
    )
    unknown = command(
        data={"instance": "nobody", "to": TO, "message": {"type": "text", "text": "x"}}
    )
    ambiguous = command(
        data={"instance": "twin", "to": TO, "message": {"type": "text", "text": "x"}}
    )
    await producer.publish(unknown)
    await producer.publish(ambiguous)

    failed = await events.wait_for(lambda e: e["type"] == "msgflash.message.failed", count=2)
    codes = {e["data"]["requestId"]: e["data"]["error"]["code"] for e in failed}
    assert codes == {unknown["id"]: "INSTANCE_NOT_FOUND", ambiguous["id"]: "INSTANCE_AMBIGUOUS"}
    assert _posts(await sandbox.requests("/api/v1/messages/send")) == []


async def test_default_instance_is_used_when_the_command_names_none(
    relay_factory: Any, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await relay_factory(relay_default_instance="warming")
    await producer.publish(command(data={"to": TO, "message": {"type": "text", "text": "d"}}))

    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent")
    (request,) = _posts(await sandbox.requests("/api/v1/messages/send"))
    assert request["body"]["instanceId"] == INSTANCE_WARMING


async def test_safety_warning_for_a_warming_instance_but_not_a_stable_one(
    relay: Relay, events: EventTap, producer: Producer
) -> None:
    warming = command(
        data={"instanceId": INSTANCE_WARMING, "to": TO, "message": {"type": "text", "text": "w"}}
    )
    stable = command(
        data={"instanceId": INSTANCE_MAIN, "to": TO, "message": {"type": "text", "text": "s"}}
    )
    await producer.publish(stable)
    await producer.publish(warming)

    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent", count=2)
    (warning,) = await events.wait_for(lambda e: e["type"] == "msgflash.safety.warning")
    data = warning["data"]
    assert data["requestId"] == warming["id"]
    assert data["subject"]["kind"] == "message"
    assert data["instanceId"] == INSTANCE_WARMING
    assert data["decision"] == "warn"
    assert data["warnings"]
    assert not [
        e for e in events.of_request(stable["id"]) if e["type"] == "msgflash.safety.warning"
    ]


async def test_a_429_storm_ends_in_success_with_the_attempts_reported(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await sandbox.set_faults(force_429_count=3, paths=["/api/v1/messages"])
    cmd = command()
    await producer.publish(cmd)

    (sent,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.sent", timeout=30)
    assert sent["data"]["attempts"] == 4
    statuses = [r["status"] for r in _posts(await sandbox.requests("/api/v1/messages/send"))]
    assert statuses == [429, 429, 429, 201]


async def test_a_400_from_msgflash_fails_once_with_its_code_and_is_not_retried(
    relay: Relay,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    amqp: AbstractConnection,
    topology: Topology,
) -> None:
    # A template whose variable is missing: valid for the relay, rejected by MsgFlash (400).
    cmd = command(
        data={
            "instanceId": INSTANCE_MAIN,
            "to": TO,
            "template": {"id": TEMPLATE_WELCOME, "variables": {}},
        }
    )
    await producer.publish(cmd)

    (failed,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.failed")
    error = failed["data"]["error"]
    assert error["code"] == "TEMPLATE_VARIABLES_MISSING"
    assert error["httpStatus"] == 400
    assert error["retryable"] is False
    assert failed["data"]["attempts"] == 1
    assert len(_posts(await sandbox.requests("/api/v1/messages/send"))) == 1
    (parked,) = await dead_letters(amqp, topology, expect=1)
    assert parked.headers["x-relay-error-code"] == "TEMPLATE_VARIABLES_MISSING"
    assert json.loads(parked.body)["id"] == cmd["id"]


INVALID_BODIES: list[tuple[str, bytes, dict[str, Any]]] = [
    ("not json", b"{not json", {}),
    ("wrong content type", b'{"specversion":"1.0"}', {"content_type": "text/plain"}),
    ("huge body", b'{"pad":"' + b"x" * (300 * 1024) + b'"}', {}),
    (
        "unknown type",
        json.dumps({**command(), "type": "msgflash.message.teleport"}).encode(),
        {},
    ),
    (
        "three buttons",
        json.dumps(
            command(
                data={
                    "instanceId": INSTANCE_MAIN,
                    "to": TO,
                    "message": {
                        "type": "buttons",
                        "title": "t",
                        "description": "d",
                        "buttons": [
                            {"kind": "reply", "displayText": str(i), "id": str(i)} for i in range(3)
                        ],
                    },
                }
            )
        ).encode(),
        {},
    ),
    (
        "naive scheduledAt",
        json.dumps(
            command(
                "msgflash.message.schedule",
                {
                    "instanceId": INSTANCE_MAIN,
                    "to": TO,
                    "scheduledAt": "2030-01-01T10:00:00",
                    "message": {"type": "text", "text": "x"},
                },
            )
        ).encode(),
        {},
    ),
    (
        "bad E.164",
        json.dumps(
            command(
                data={
                    "instanceId": INSTANCE_MAIN,
                    "to": "0612345678",
                    "message": {"type": "text", "text": "x"},
                }
            )
        ).encode(),
        {},
    ),
]


async def test_invalid_commands_are_failed_and_parked_and_the_consumer_keeps_working(
    relay: Relay,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    amqp: AbstractConnection,
    topology: Topology,
) -> None:
    for _, body, properties in INVALID_BODIES:
        await producer.publish(body, "message.send", **properties)
    good = command()
    await producer.publish(good)

    failed = await events.wait_for(
        lambda e: e["type"] == "msgflash.message.failed", count=len(INVALID_BODIES)
    )
    assert {e["data"]["error"]["code"] for e in failed} == {"INVALID_EVENT"}
    assert all(e["data"]["error"]["details"] for e in failed)
    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent")
    parked = await dead_letters(amqp, topology, expect=len(INVALID_BODIES))
    assert sorted(m.body for m in parked) == sorted(body for _, body, _ in INVALID_BODIES)
    assert {m.headers["x-relay-error-code"] for m in parked} == {"INVALID_EVENT"}
    assert all(m.headers["x-relay-attempts"] == 0 for m in parked)
    assert len(_posts(await sandbox.requests("/api/v1/messages"))) == 1


async def test_invalid_event_details_name_each_field(
    relay: Relay, events: EventTap, producer: Producer
) -> None:
    cmd = command(
        data={"instanceId": INSTANCE_MAIN, "to": "12", "message": {"type": "text", "text": ""}}
    )
    await producer.publish(cmd)

    (failed,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.failed")
    fields = {d["field"] for d in failed["data"]["error"]["details"]}
    assert {"data.to", "data.message.text"} <= fields
    assert failed["data"]["requestId"] == cmd["id"]


async def test_binary_mode_commands_are_accepted(
    relay: Relay, events: EventTap, producer: Producer
) -> None:
    data = {"instanceId": INSTANCE_MAIN, "to": TO, "message": {"type": "text", "text": "binary"}}
    await producer.publish(
        json.dumps(data).encode(),
        "message.send",
        content_type="application/json",
        message_id="bin-1",
        type="msgflash.message.send",
        app_id="binary-producer",
    )

    (sent,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.sent")
    assert sent["data"]["requestId"] == "bin-1"
    assert sent["data"]["requestSource"] == "binary-producer"


async def test_result_goes_to_reply_to_with_the_correlation_id(
    relay: Relay, events: EventTap, producer: Producer, amqp: AbstractConnection
) -> None:
    channel = await amqp.channel()
    reply = await channel.declare_queue(exclusive=True, auto_delete=True)
    cmd = command()
    await producer.publish(cmd, reply_to=reply.name, correlation_id="corr-42")

    message = None
    for _ in range(200):
        message = await reply.get(fail=False, no_ack=True)
        if message is not None:
            break
        await asyncio.sleep(0.05)
    assert message is not None
    assert message.correlation_id == "corr-42"
    assert json.loads(message.body)["type"] == "msgflash.message.sent"
    (on_bus,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.sent")
    assert events.messages[events.events.index(on_bus)].correlation_id == "corr-42"
    await channel.close()


async def test_the_same_command_delivered_twice_is_sent_once(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    cmd = command()
    await producer.publish(cmd)
    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent")
    await producer.publish(cmd)

    results = await events.wait_for(lambda e: e["type"] == "msgflash.message.sent", count=2)
    assert results[0]["id"] == results[1]["id"]  # the stored event, republished
    assert len(_posts(await sandbox.requests("/api/v1/messages/send"))) == 1


async def test_amqp_publishes_are_persistent_cloudevents(
    relay: Relay, events: EventTap, producer: Producer
) -> None:
    await producer.publish(command())
    (sent,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.sent")
    message = events.messages[events.events.index(sent)]
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/cloudevents+json"
    assert sent["specversion"] == "1.0"
    assert sent["source"] == "msgflash-relay"


async def test_each_command_ends_in_one_outcome_line_carrying_its_context(
    relay: Relay, producer: Producer
) -> None:
    message = {"type": "text", "text": "Outcome line"}
    cmd = command(
        "msgflash.message.send", {"instanceId": INSTANCE_MAIN, "to": TO, "message": message}
    )
    with relay_log() as log:
        await producer.publish(cmd)
        await log.wait_handled()

    (outcome,) = log.named("command_handled")
    assert outcome["requestId"] == cmd["id"]
    assert outcome["requestSource"] == cmd["source"]
    assert outcome["type"] == "msgflash.message.send"
    assert outcome["instanceId"] == INSTANCE_MAIN
    assert outcome["outcome"] == "succeeded"
    assert outcome["attempts"] == 1
    assert outcome["durationMs"] >= 0
    assert outcome["log_level"] == "info"
