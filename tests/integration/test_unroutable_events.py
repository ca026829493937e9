"""A relay whose events nobody consumes yet says so once per routing key, then counts."""

from __future__ import annotations

from service.wiring.relay import Relay
from tests.conftest import Producer, command, relay_log


def unroutable(relay: Relay, routing_key: str) -> float:
    value = relay.metrics.registry.get_sample_value(
        "relay_events_unroutable_total", {"routing_key": routing_key}
    )
    return value or 0.0


async def test_unroutable_events_are_logged_once_per_routing_key_then_counted(
    relay: Relay, producer: Producer
) -> None:
    with relay_log() as log:
        for _ in range(3):
            await producer.publish(command())
        await log.wait_handled(3, timeout=30)

    (logged,) = log.named("event_unroutable")
    assert logged["routingKey"] == "message.sent"
    assert logged["eventType"] == "msgflash.message.sent"
    assert "bind one to subscribe" in logged["hint"]
    assert "relay_events_unroutable_total" in logged["hint"]
    assert unroutable(relay, "message.sent") == 3
