"""``run --demo``: send one command through the running relay and narrate the events it causes.

This is what ``make run`` shows a newcomer: a scheduled WhatsApp message going
scheduled -> sent -> delivered -> read on the bus, through the embedded MsgFlash sandbox and its
webhooks; then, when a Tether account is served, an SMS campaign created in the embedded Tether
sandbox (``tether.campaign.created``).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aio_pika
import structlog

from service.contract.commands import ROUTING_KEYS, CommandType

if TYPE_CHECKING:
    from service.wiring.relay import Relay

log = structlog.get_logger("service.tools.demo")

DEMO_SOURCE = "msgflash-relay/demo"
FINAL_TYPES = frozenset(
    {
        "msgflash.webhook.message.read",
        "msgflash.message.failed",
        "tether.campaign.created",
        "tether.campaign.failed",
    }
)


def demo_command(now: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": DEMO_SOURCE,
        "type": CommandType.SCHEDULE_MESSAGE.value,
        "data": {
            "instance": "main",
            "to": "+33612345678",
            "scheduledAt": (now + timedelta(seconds=2)).isoformat(),
            "message": {"type": "text", "text": "Hello from msgflash-relay 👋"},
        },
    }


def tether_demo_command(now: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": DEMO_SOURCE,
        "type": CommandType.TETHER_CREATE_CAMPAIGN.value,
        "data": {
            "name": "Demo SMS campaign",
            "message": "Hi {{firstName}}, this SMS went through msgflash-relay and Tether",
            "newContacts": [{"firstName": "Ana", "phoneNumber": "+33612345678"}],
            "scheduleDate": (now + timedelta(hours=1)).isoformat(),
        },
    }


async def run_demo(relay: Relay, *, timeout: float = 60.0) -> None:
    connection = relay.broker.connection
    assert connection is not None
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(relay.topology.events_exchange, routing_key="#")
        command = demo_command(datetime.now(UTC))
        exchange = await channel.get_exchange(relay.topology.commands_exchange)
        await exchange.publish(
            aio_pika.Message(
                json.dumps(command).encode(),
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            ROUTING_KEYS[CommandType.SCHEDULE_MESSAGE],
        )
        _say(f"demo: published {command['type']} id={command['id']} to {command['data']['to']}")
        await _narrate(queue, str(command["id"]), timeout)
        if relay.tether is not None:
            # A queue of its own: the first one went with its consumer (auto-delete).
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(relay.topology.events_exchange, routing_key="tether.#")
            tether = tether_demo_command(datetime.now(UTC))
            await exchange.publish(
                aio_pika.Message(
                    json.dumps(tether).encode(),
                    content_type="application/cloudevents+json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                ROUTING_KEYS[CommandType.TETHER_CREATE_CAMPAIGN],
            )
            _say(f"demo: published {tether['type']} id={tether['id']} (an SMS campaign)")
            await _narrate(queue, str(tether["id"]), timeout)
    except TimeoutError:
        _say("demo: no more events within the timeout; is the webhook registered?")
    finally:
        await channel.close()
    _say("demo: done. The relay keeps running; press Ctrl-C to stop it.")


async def _narrate(queue: aio_pika.abc.AbstractQueue, request_id: str, timeout: float) -> None:
    async with queue.iterator(timeout=timeout) as messages:
        async for message in messages:
            await message.ack()
            event = json.loads(message.body)
            data = event.get("data", {})
            if data.get("requestId") != request_id:
                continue
            _say(f"demo: event {event['type']}: {_summary(data)}")
            if event["type"] in FINAL_TYPES:
                return


def _summary(data: dict[str, Any]) -> str:
    payload = data.get("payload") or {}
    fields = {
        "messageId": data.get("messageId") or payload.get("messageId"),
        "campaignId": data.get("campaignId"),
        "status": data.get("status") or payload.get("status"),
        "error": (data.get("error") or {}).get("code"),
    }
    return " ".join(f"{k}={v}" for k, v in fields.items() if v)


def _say(line: str) -> None:
    print(line, flush=True)
