"""The AMQP topology of contract §2, derived from one prefix and declared idempotently.

Deferred retries use one classic queue per delay tier behind a headers exchange: the message keeps
its command routing key, so when its TTL expires RabbitMQ dead-letters it back to the commands
exchange under that key and it lands in the right work queue again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, ExchangeType

from service.contract.amqp import RETRY_TIER_HEADER, Topology
from service.contract.errors import TopologyConflict

QUORUM = {"x-queue-type": "quorum"}


async def declare_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Declare everything; re-declaring with the same arguments is a no-op.

    Each declaration runs on its own short-lived channel because a conflict closes the channel
    (PRECONDITION_FAILED) and we want to name the object that conflicted.
    """
    t = topology
    await _exchange(connection, t.commands_exchange, ExchangeType.TOPIC)
    await _exchange(connection, t.events_exchange, ExchangeType.TOPIC)
    await _exchange(connection, t.retry_exchange, ExchangeType.HEADERS)
    await _queue(connection, t.messages_queue, QUORUM, t.commands_exchange, ["message.*"])
    await _queue(connection, t.campaigns_queue, QUORUM, t.commands_exchange, ["campaign.*"])
    await _queue(connection, t.tether_queue, QUORUM, t.commands_exchange, ["tether.#"])
    await _queue(connection, t.dead_letter_queue, QUORUM, None, [])
    for account_queue in t.account_queues:
        # Unbound: only the relay puts commands there, moving them from a shared queue.
        await _queue(connection, account_queue, QUORUM, None, [])
    for tier in t.retry_tiers:
        arguments = {
            "x-message-ttl": int(tier.delay_seconds * 1000),
            "x-dead-letter-exchange": t.commands_exchange,
        }
        channel = await connection.channel()
        try:
            queue = await _declare_queue(channel, tier.queue, arguments)
            # Bound by the queue's own name, not its index: tier queues left behind by other
            # RELAY_RETRY_DELAYS (or another release) then never match and never duplicate.
            await queue.bind(
                t.retry_exchange,
                arguments={"x-match": "all", RETRY_TIER_HEADER: tier.queue},
            )
        finally:
            await _close_quietly(channel)


async def _exchange(connection: AbstractConnection, name: str, kind: ExchangeType) -> None:
    channel = await connection.channel()
    try:
        await channel.declare_exchange(name, kind, durable=True)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyConflict(
            f"exchange {name!r} already exists with other settings ({_reason(exc)}): "
            f"delete it or set RELAY_EXCHANGE_PREFIX to use other names"
        ) from None
    finally:
        await _close_quietly(channel)


async def _queue(
    connection: AbstractConnection,
    name: str,
    arguments: dict[str, Any],
    exchange: str | None,
    keys: Sequence[str],
) -> None:
    channel = await connection.channel()
    try:
        queue = await _declare_queue(channel, name, arguments)
        for key in keys:
            assert exchange is not None
            await queue.bind(exchange, routing_key=key)
    finally:
        await _close_quietly(channel)


async def _declare_queue(
    channel: AbstractChannel, name: str, arguments: dict[str, Any]
) -> aio_pika.abc.AbstractQueue:
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyConflict(
            f"queue {name!r} already exists with other arguments ({_reason(exc)}): "
            f"delete it (after draining it) or set RELAY_EXCHANGE_PREFIX to use other names"
        ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.split(" - ", 1)[-1].strip("'\"() ")


async def _close_quietly(channel: AbstractChannel) -> None:
    if not channel.is_closed:
        with contextlib.suppress(aiormq.exceptions.AMQPError):
            await channel.close()


async def delete_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Remove every object (tests and `topology --delete`); missing ones are fine."""
    channel = await connection.channel()
    try:
        for queue in topology.queues():
            await channel.queue_delete(queue)
        for exchange in topology.exchanges():
            await channel.exchange_delete(exchange)
    finally:
        await _close_quietly(channel)
