"""Commands built by the official CloudEvents SDK (PyPI ``cloudevents``), published as a producer
in another team would: every binding the SDK writes for RabbitMQ reaches MsgFlash once, and a
binary command that fails is answered under the producer's own id.
"""

from __future__ import annotations

from typing import Any

import aio_pika
import pytest
from cloudevents.core.bindings import amqp as amqp_binding
from cloudevents.core.bindings import rabbitmq as rabbitmq_binding
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from service.contract.amqp import Topology
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.wiring.relay import Relay
from tests.conftest import EventTap, Producer, SandboxHandle, sends_by_text

pytestmark = pytest.mark.usefixtures("relay")

SOURCE = "urn:orders-service"


def sdk_command(text: str, *, to: str = "+33612345678", **attributes: Any) -> CloudEvent:
    return CloudEvent(
        attributes={
            "type": "msgflash.message.send",
            "source": SOURCE,
            "datacontenttype": "application/json",
            **attributes,
        },
        data={"instanceId": INSTANCE_MAIN, "to": to, "message": {"type": "text", "text": text}},
    )


async def publish(
    producer: Producer, body: bytes, headers: dict[str, Any], content_type: str | None
) -> None:
    exchange = await producer.channel.get_exchange(producer.topology.commands_exchange)
    message = aio_pika.Message(
        body,
        headers=headers,
        content_type=content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    await exchange.publish(message, "message.send")


async def sent_for(events: EventTap, event: CloudEvent, kind: str = "sent") -> dict[str, Any]:
    [answer] = await events.wait_for(
        lambda e: (
            e["type"] == f"msgflash.message.{kind}" and e["data"]["requestId"] == event.get_id()
        )
    )
    assert answer["data"]["requestSource"] == SOURCE
    return answer


async def test_the_amqp_binding_binary_mode_is_accepted(
    producer: Producer, events: EventTap, sandbox: SandboxHandle
) -> None:
    event = sdk_command("sdk amqp binary", subject="order-1")
    message = amqp_binding.to_binary(event, JSONFormat())
    assert "cloudEvents_id" in message.application_properties

    content_type = message.properties["content-type"]
    await publish(producer, message.application_data, message.application_properties, content_type)

    await sent_for(events, event)
    assert (await sends_by_text(sandbox))["sdk amqp binary"] == 1


async def test_the_colon_spelling_of_the_amqp_binding_is_accepted(
    producer: Producer, events: EventTap
) -> None:
    event = sdk_command("sdk amqp colon")
    message = amqp_binding.to_binary(event, JSONFormat())
    headers = {
        name.replace("cloudEvents_", "cloudEvents:"): value
        for name, value in message.application_properties.items()
    }

    await publish(producer, message.application_data, headers, "application/json")

    await sent_for(events, event)


async def test_the_rabbitmq_binding_ce_headers_are_accepted(
    producer: Producer, events: EventTap
) -> None:
    event = sdk_command("sdk rabbitmq binary")
    message = rabbitmq_binding.to_binary(event, JSONFormat())
    assert "ce-id" in message.headers

    await publish(producer, message.body, dict(message.headers), message.content_type)

    await sent_for(events, event)


async def test_kafka_style_ce_underscore_headers_are_accepted(
    producer: Producer, events: EventTap
) -> None:
    event = sdk_command("sdk underscore binary")
    message = rabbitmq_binding.to_binary(event, JSONFormat())
    headers = {name.replace("ce-", "ce_", 1): value for name, value in message.headers.items()}

    await publish(producer, message.body, headers, "application/json")

    await sent_for(events, event)


async def test_the_structured_mode_of_the_sdk_is_accepted(
    producer: Producer, events: EventTap
) -> None:
    event = sdk_command("sdk structured")
    message = amqp_binding.to_structured(event, JSONFormat())

    content_type = message.properties["content-type"]
    await publish(producer, message.application_data, {}, content_type)

    await sent_for(events, event)


async def test_a_failing_binary_command_is_answered_under_the_producers_own_id(
    producer: Producer, events: EventTap, relay: Relay, declared: Topology
) -> None:
    event = sdk_command("never sent", to="0612345678")  # not E.164
    message = amqp_binding.to_binary(event, JSONFormat())

    await publish(producer, message.application_data, message.application_properties, None)

    failed = await sent_for(events, event, kind="failed")
    assert failed["data"]["error"]["code"] == "INVALID_EVENT"
    assert [d["field"] for d in failed["data"]["error"]["details"]] == ["data.to"]
