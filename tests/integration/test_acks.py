"""Coalesced acks against the real broker: what is acked, what comes back, what never stalls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from consumers.pipeline import Delivery
from service.bus import acks as acks_module
from service.bus.acks import Acks, ChannelAcks
from service.bus.publisher import OriginalMessage
from service.contract.errors import BrokerUnavailable


@pytest.fixture
async def queue_name(amqp: AbstractConnection) -> AsyncIterator[str]:
    name = f"t-acks-{uuid.uuid4().hex[:10]}"
    setup = await amqp.channel()
    await setup.declare_queue(name, durable=False)
    yield name
    await setup.queue_delete(name)
    await setup.close()


async def publish(amqp: AbstractConnection, queue: str, count: int) -> None:
    channel = await amqp.channel(publisher_confirms=True)
    for index in range(count):
        await channel.default_exchange.publish(aio_pika.Message(str(index).encode()), queue)
    await channel.close()


async def consume(
    amqp: AbstractConnection, queue: str, *, published: int, prefetch: int
) -> tuple[AbstractChannel, asyncio.Queue[AbstractIncomingMessage]]:
    """Publish ``published`` messages to ``queue``, then consume it on a channel of its own."""
    await publish(amqp, queue, published)
    channel = await amqp.channel()
    await channel.set_qos(prefetch_count=prefetch)
    received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def on_message(message: AbstractIncomingMessage) -> None:
        await received.put(message)

    declared = await channel.get_queue(queue, ensure=False)
    await declared.consume(on_message, no_ack=False)
    return channel, received


async def take(received: asyncio.Queue[AbstractIncomingMessage]) -> AbstractIncomingMessage:
    return await asyncio.wait_for(received.get(), timeout=10)


async def remaining(amqp: AbstractConnection, queue: str) -> list[bytes]:
    """The bodies still in ``queue`` once every consumer channel is closed (requeued ones)."""
    channel = await amqp.channel()
    declared = await channel.get_queue(queue, ensure=False)
    bodies = []
    while (message := await declared.get(no_ack=True, fail=False, timeout=5)) is not None:
        bodies.append(message.body)
    await channel.close()
    return sorted(bodies, key=int)


async def closed_then_left(
    channel: AbstractChannel, amqp: AbstractConnection, queue: str
) -> list[bytes]:
    """Close the consumer ``channel``, then what the broker kept in ``queue`` (requeued)."""
    await channel.close()
    return await remaining(amqp, queue)


async def one_ack_pending_on_a_closed_channel(
    amqp: AbstractConnection, queue: str
) -> tuple[Acks, ChannelAcks]:
    """A delivery acked, its channel closed before the ack's frame went out."""
    channel, received = await consume(amqp, queue, published=1, prefetch=1)
    message = await take(received)
    registry = Acks()
    ack_all([message], registry)
    channel_acks = registry.for_message(message)
    await channel.close()
    return registry, channel_acks


def tag_of(message: AbstractIncomingMessage) -> int:
    assert message.delivery_tag is not None
    return message.delivery_tag


def ack_all(messages: list[AbstractIncomingMessage], registry: Acks) -> None:
    """Ack ``messages`` with no loop iteration in between, as commands finishing together."""
    for message in messages:
        registry.for_message(message).ack(tag_of(message))


async def test_a_burst_of_acks_goes_out_in_few_frames_and_empties_the_queue(
    amqp: AbstractConnection, queue_name: str
) -> None:
    channel, received = await consume(amqp, queue_name, published=200, prefetch=64)
    registry = Acks()
    taken = 0
    while taken < 200:
        # As commands finish in the relay: a prefetch window's worth in one loop iteration.
        burst = [await take(received) for _ in range(min(64, 200 - taken))]
        ack_all(burst, registry)
        taken += len(burst)
    await asyncio.sleep(0.2)  # let the last flush reach the broker
    frames = registry.for_message(burst[-1]).frames_sent
    assert await closed_then_left(channel, amqp, queue_name) == []
    assert 1 <= frames <= 8


async def test_a_slow_delivery_does_not_hold_back_the_acks_of_later_ones(
    amqp: AbstractConnection, queue_name: str
) -> None:
    channel, received = await consume(amqp, queue_name, published=20, prefetch=5)
    registry = Acks()
    slow = await take(received)
    # With acks held behind the slow one, the broker would stop after 5 unacked deliveries.
    for _ in range(19):
        ack_all([await take(received)], registry)
    ack_all([slow], registry)
    await asyncio.sleep(0.2)
    assert await closed_then_left(channel, amqp, queue_name) == []


async def test_only_the_deliveries_never_acked_come_back(
    amqp: AbstractConnection, queue_name: str
) -> None:
    channel, received = await consume(amqp, queue_name, published=10, prefetch=10)
    registry = Acks()
    messages = [await take(received) for _ in range(10)]
    in_progress, left_unacked = messages[2], messages[6]
    registry.for_message(left_unacked).settle(tag_of(left_unacked))
    ack_all([m for m in messages if m is not in_progress and m is not left_unacked], registry)
    await asyncio.sleep(0.2)
    assert await closed_then_left(channel, amqp, queue_name) == [
        in_progress.body,
        left_unacked.body,
    ]


async def test_acking_on_a_closed_channel_says_the_broker_is_unavailable(
    amqp: AbstractConnection, queue_name: str
) -> None:
    channel, received = await consume(amqp, queue_name, published=1, prefetch=1)
    message = await take(received)
    await channel.close()
    with pytest.raises(BrokerUnavailable):
        Acks().for_message(message)
    assert await remaining(amqp, queue_name) == [b"0"]


async def test_sent_hands_every_pending_ack_to_the_connection_before_it_closes(
    amqp: AbstractConnection, queue_name: str
) -> None:
    channel, received = await consume(amqp, queue_name, published=5, prefetch=5)
    registry = Acks()
    messages = [await take(received) for _ in range(5)]
    ack_all(messages, registry)
    channel_acks = registry.for_message(messages[0])
    assert channel_acks.frames_sent == 0  # no loop iteration yet: the flush has not run
    await registry.sent()
    assert channel_acks.frames_sent == 1  # one multiple ack, handed over before sent() returned
    assert await closed_then_left(channel, amqp, queue_name) == []


async def test_a_closed_channel_is_forgotten_once_deliveries_come_on_a_new_one(
    amqp: AbstractConnection, queue_name: str
) -> None:
    registry = Acks()
    for _reconnect in range(3):
        channel, received = await consume(amqp, queue_name, published=1, prefetch=1)
        message = await take(received)
        registry.for_message(message).ack(tag_of(message))
        await registry.sent()
        await channel.close()
    assert len(registry) == 1  # the last channel; the two before it were dropped
    assert await remaining(amqp, queue_name) == []


async def test_acks_whose_channel_closed_before_they_went_out_are_dropped_with_a_warning(
    amqp: AbstractConnection, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acks_module, "ACK_WINDOW_SECONDS", 60.0)  # no flush before the close
    _, channel_acks = await one_ack_pending_on_a_closed_channel(amqp, queue_name)
    with structlog.testing.capture_logs() as logs:
        channel_acks._flush()  # as the window's timer does
        await asyncio.sleep(0.05)
    assert [entry["event"] for entry in logs] == ["acks_not_sent"]
    assert await remaining(amqp, queue_name) == [b"0"]  # requeued by the broker, not lost


async def test_frames_reach_the_broker_in_order_even_when_the_write_queue_is_full(
    amqp: AbstractConnection, queue_name: str
) -> None:
    # 30 single acks (every other tag, above tags in progress) fill aiormq's write queue of 10
    # frames; the multiple ack of the next flush covers them and must not overtake them, or
    # the broker closes the channel over an unknown delivery tag.
    channel, received = await consume(amqp, queue_name, published=60, prefetch=60)
    messages = [await take(received) for _ in range(60)]
    registry = Acks()
    ack_all(messages[1::2], registry)
    channel_acks = registry.for_message(messages[0])
    channel_acks._flush()  # the first flush, as the timer would
    await asyncio.sleep(0)  # its sender starts: 30 single frames, the write queue fills
    ack_all(messages[0::2], registry)
    await registry.sent()  # the second, queued behind the first
    assert not channel.is_closed
    assert channel_acks.frames_sent == 31
    assert await closed_then_left(channel, amqp, queue_name) == []


async def test_waiting_for_the_acks_of_a_closed_channel_returns_at_once(
    amqp: AbstractConnection, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acks_module, "ACK_WINDOW_SECONDS", 60.0)  # no flush before the close
    registry, channel_acks = await one_ack_pending_on_a_closed_channel(amqp, queue_name)
    with structlog.testing.capture_logs() as logs:
        async with asyncio.timeout(1):
            await registry.sent()
    # Nothing was attempted on the closed channel (on a dead connection an attempt could
    # block for good on its write queue): no frame, no failed send.
    assert channel_acks.frames_sent == 0
    assert logs == []


async def test_a_delivery_acked_twice_sends_one_frame_even_once_acks_go_alone(
    amqp: AbstractConnection, queue_name: str
) -> None:
    channel, received = await consume(amqp, queue_name, published=2, prefetch=2)
    left, message = await take(received), await take(received)
    registry = Acks()
    channel_acks = registry.for_message(message)
    channel_acks.settle(tag_of(left))  # left unacked: from now on every ack goes alone
    delivery = Delivery(message, OriginalMessage.from_incoming(message), "owner:1", channel_acks)
    delivery.ack()
    await registry.sent()
    delivery.ack()  # e.g. a crash after the ack sends the command down the defer path
    await registry.sent()
    await asyncio.sleep(0.2)  # a second frame for the tag would close the channel about now
    assert not channel.is_closed
    assert channel_acks.frames_sent == 1
    assert await closed_then_left(channel, amqp, queue_name) == [left.body]
