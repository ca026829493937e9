"""A relay whose events nobody consumes yet says so once per routing key, then counts."""

from __future__ import annotations

import asyncio

import structlog
from structlog.typing import EventDict

from service.wiring.relay import Relay
from tests.conftest import Producer, command


def unroutable(relay: Relay, routing_key: str) -> float:
    value = relay.metrics.registry.get_sample_value(
        "relay_events_unroutable_total", {"routing_key": routing_key}
    )
    return value or 0.0


async def test_unroutable_events_are_logged_once_per_routing_key_then_counted(
    relay: Relay, producer: Producer
) -> None:
    handled: list[EventDict] = []
    all_handled = asyncio.Event()

    def spot_outcomes(_logger: object, _method: str, entry: EventDict) -> EventDict:
        if entry["event"] == "command_handled":
            handled.append(entry)
            if len(handled) == 3:
                all_handled.set()
        return entry

    with structlog.testing.capture_logs([spot_outcomes]) as logs:
        for _ in range(3):
            await producer.publish(command())
        await asyncio.wait_for(all_handled.wait(), timeout=30)

    (logged,) = [entry for entry in logs if entry["event"] == "event_unroutable"]
    assert logged["routingKey"] == "message.sent"
    assert logged["eventType"] == "msgflash.message.sent"
    assert "bind one to subscribe" in logged["hint"]
    assert "relay_events_unroutable_total" in logged["hint"]
    assert unroutable(relay, "message.sent") == 3
