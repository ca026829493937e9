"""Topology of contract §2 declared on the real broker."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractConnection

from service.bus.topology import declare_topology, delete_topology
from service.contract.amqp import RETRY_TIER_HEADER, Topology
from service.contract.errors import TopologyConflict


async def test_declaring_twice_is_a_no_op(amqp: AbstractConnection, topology: Topology) -> None:
    await declare_topology(amqp, topology)
    await declare_topology(amqp, topology)

    channel = await amqp.channel()
    for name in topology.queues():
        await channel.declare_queue(name, passive=True)
    for name in topology.exchanges():
        await channel.get_exchange(name, ensure=True)
    await channel.close()


async def test_each_providers_account_queues_are_declared_idempotently_and_deleted(
    amqp: AbstractConnection, prefix: str
) -> None:
    laned = Topology(prefix=prefix, accounts=("default", "acme"), tether_accounts=("default",))
    own = (
        f"{prefix}.account.default",
        f"{prefix}.account.acme",
        f"{prefix}.account.default.tether",
    )
    assert laned.account_queues == own
    try:
        await declare_topology(amqp, laned)
        await declare_topology(amqp, laned)
        channel = await amqp.channel()
        for name in own:
            await channel.declare_queue(name, passive=True)
        await channel.close()
    finally:
        await delete_topology(amqp, laned)
    channel = await amqp.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.declare_queue(f"{prefix}.account.default.tether", passive=True)


async def test_contract_names_derive_from_the_prefix() -> None:
    names = Topology(prefix="msgflash", retry_delays=(10, 60, 600, 3600))
    assert names.commands_exchange == "msgflash.commands"
    assert names.events_exchange == "msgflash.events"
    assert names.messages_queue == "msgflash.messages"
    assert names.campaigns_queue == "msgflash.campaigns"
    assert names.dead_letter_queue == "msgflash.dead-letter"
    assert [t.queue for t in names.retry_tiers] == [
        "msgflash.retry.10s",
        "msgflash.retry.1m",
        "msgflash.retry.10m",
        "msgflash.retry.1h",
    ]


async def test_work_queues_are_quorum_queues_routed_by_command_kind(
    amqp: AbstractConnection, topology: Topology
) -> None:
    await declare_topology(amqp, topology)
    channel = await amqp.channel()
    # Re-declaring as classic must conflict: proves the existing queue is a quorum queue.
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await channel.declare_queue(topology.messages_queue, durable=True)
    channel = await amqp.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(topology.commands_exchange)
    await exchange.publish(aio_pika.Message(b"m"), "message.send")
    await exchange.publish(aio_pika.Message(b"c"), "campaign.create")
    messages = await channel.get_queue(topology.messages_queue)
    campaigns = await channel.get_queue(topology.campaigns_queue)
    assert (await messages.get(timeout=5)).body == b"m"
    assert (await campaigns.get(timeout=5)).body == b"c"
    await channel.close()


async def test_a_conflicting_existing_queue_is_named_in_the_error(
    amqp: AbstractConnection, topology: Topology
) -> None:
    channel = await amqp.channel()
    await channel.declare_queue(topology.messages_queue, durable=True)  # classic, not quorum
    await channel.close()

    with pytest.raises(TopologyConflict) as raised:
        await declare_topology(amqp, topology)
    assert topology.messages_queue in str(raised.value)
    assert "RELAY_EXCHANGE_PREFIX" in str(raised.value)


async def test_retry_tiers_return_commands_under_their_routing_key(
    amqp: AbstractConnection, topology: Topology
) -> None:
    await declare_topology(amqp, topology)
    channel = await amqp.channel(publisher_confirms=True)
    retry = await channel.get_exchange(topology.retry_exchange)
    await retry.publish(
        aio_pika.Message(b"later", headers={RETRY_TIER_HEADER: topology.retry_tiers[0].queue}),
        "campaign.create",
    )
    campaigns = await channel.get_queue(topology.campaigns_queue)
    message = await campaigns.get(fail=False)
    assert message is None  # still waiting out its delay
    for _ in range(100):
        message = await campaigns.get(fail=False)
        if message is not None:
            break
        await asyncio.sleep(0.05)
    assert message is not None and message.body == b"later"
    await message.ack()
    # Exactly one copy: the tier-0 queue alone held it, not every tier.
    await asyncio.sleep(max(topology.retry_delays) + 0.3)
    assert await campaigns.get(fail=False) is None
    await channel.close()
