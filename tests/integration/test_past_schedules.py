"""A past schedule is refused where a command first arrives: on the bus and at the ingress.

MsgFlash accepts a past ``scheduledAt`` and sends at once, and Tether does not say what it does
with a past ``scheduleDate``; the relay refuses both instead, with the field named. A command
that comes back later (a deferred retry) is not refused again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractConnection

from service.contract.amqp import ATTEMPTS_HEADER, DEFERRALS_HEADER, Topology
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.wiring.relay import Relay
from tests.conftest import EventTap, Producer, RelayFactory, SandboxHandle, command, dead_letters
from tests.integration.test_ingress import TOKENS, post

YESTERDAY = datetime.now(UTC) - timedelta(days=1)


def past_schedule() -> dict[str, Any]:
    data = {
        "instanceId": INSTANCE_MAIN,
        "to": "+33612345678",
        "scheduledAt": YESTERDAY.isoformat(),
        "message": {"type": "text", "text": "too late"},
    }
    return command("msgflash.message.schedule", data)


def past_campaign() -> dict[str, Any]:
    data = {
        "instanceId": INSTANCE_MAIN,
        "name": "Yesterday",
        "schedule": YESTERDAY.isoformat(),
        "recipients": {"type": "all"},
        "message": {"type": "text", "text": "too late"},
    }
    return command("msgflash.campaign.create", data)


def past_tether_campaign() -> dict[str, Any]:
    data = {
        "name": "Yesterday",
        "message": "too late",
        "newContacts": [{"firstName": "Jamie", "phoneNumber": "+14155550133"}],
        "scheduleDate": YESTERDAY.isoformat(),
    }
    return command("tether.campaign.create", data)


@pytest.mark.parametrize(
    ("make", "failed_type", "field"),
    [
        (past_schedule, "msgflash.message.failed", "data.scheduledAt"),
        (past_campaign, "msgflash.campaign.failed", "data.schedule"),
        (past_tether_campaign, "tether.campaign.failed", "data.scheduleDate"),
    ],
)
async def test_a_past_schedule_on_the_bus_fails_invalid_event_naming_the_field(
    relay: Relay,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    amqp: AbstractConnection,
    topology: Topology,
    make: Any,
    failed_type: str,
    field: str,
) -> None:
    cmd = make()
    await producer.publish(cmd)

    (failed,) = await events.wait_for(lambda e: e["type"] == failed_type)
    error = failed["data"]["error"]
    assert error["code"] == "INVALID_EVENT"
    assert [d["field"] for d in error["details"]] == [field]
    assert "is in the past" in error["details"][0]["message"]
    (parked,) = await dead_letters(amqp, topology, expect=1)
    assert parked.headers["x-relay-error-code"] == "INVALID_EVENT"
    assert await sandbox.requests("/api/v1/messages") == []
    assert await sandbox.requests("/api/v1/campaigns") == []


async def test_a_deferred_command_whose_time_came_meanwhile_is_still_sent(
    relay: Relay, events: EventTap, producer: Producer
) -> None:
    await producer.publish(past_schedule(), headers={DEFERRALS_HEADER: 1, ATTEMPTS_HEADER: 2})

    (scheduled,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.scheduled")
    assert scheduled["data"]["messageId"]


@pytest.mark.parametrize(
    ("make", "field"),
    [(past_schedule, "data.scheduledAt"), (past_tether_campaign, "data.scheduleDate")],
)
async def test_the_ingress_refuses_a_past_schedule_with_422(
    relay_factory: RelayFactory, make: Any, field: str
) -> None:
    relay = await relay_factory(relay_ingress_tokens=",".join(TOKENS))

    status, answer, _ = await post(relay, make())

    assert status == 422
    assert answer["error"]["code"] == "INVALID_EVENT"
    assert [d["field"] for d in answer["error"]["details"]] == [field]
