"""The benchmark's side of the bus: producing ``message.schedule`` commands and tapping results.

A ``ResultTap`` is a plain queue bound to the result routing keys of the events exchange. Its
depth, polled with passive declares, says when every result is on the bus without the
harness having to consume at full speed; it is read afterwards when the events themselves
matter (attempts), or consumed live when each arrival time does (latency).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from benchmarks.workspace import Workspace
from service.bus.topology import declare_topology
from service.contract.amqp import Topology
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN

COMMAND_ROUTING_KEY = "message.schedule"
RESULT_ROUTING_KEYS = ("message.scheduled", "message.failed")
CLOUDEVENTS_JSON = "application/cloudevents+json"
PRELOAD_BATCH = 1000
DEPTH_POLL_SECONDS = 0.01


def schedule_command(command_id: str, scheduled_at: str, account: str | None = None) -> bytes:
    """A ``msgflash.message.schedule`` command; scheduled far ahead so the sandbox stays idle.
    ``account``: the CloudEvents extension attribute naming its account (absent: ``default``)."""
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": command_id,
        "source": "benchmarks",
        "type": "msgflash.message.schedule",
    }
    if account is not None:
        envelope["account"] = account
    envelope["data"] = {
        "instanceId": INSTANCE_MAIN,
        "to": "+33612345678",
        "scheduledAt": scheduled_at,
        "message": {"type": "text", "text": "Benchmark message"},
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def far_future() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_message(body: bytes, command_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type=CLOUDEVENTS_JSON,
        message_id=command_id,
        correlation_id=command_id,  # echoed on the result: how latency pairs them up
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def publish_commands(
    connection: AbstractConnection,
    topology: Topology,
    count: int,
    accounts: Sequence[str | None] = (None,),
) -> list[str]:
    """Publish ``count`` commands with confirms, a batch at a time; returns their ids.

    Their accounts take turns in the order given (``None``: no ``account`` attribute), so each
    account's commands are spread evenly through the queue.
    """
    channel = await connection.channel(publisher_confirms=True)
    try:
        exchange = await channel.get_exchange(topology.commands_exchange)
        scheduled_at = far_future()
        ids = [str(uuid.uuid4()) for _ in range(count)]
        for start in range(0, count, PRELOAD_BATCH):
            batch = ids[start : start + PRELOAD_BATCH]
            await asyncio.gather(
                *(
                    exchange.publish(
                        command_message(
                            schedule_command(i, scheduled_at, accounts[n % len(accounts)]), i
                        ),
                        COMMAND_ROUTING_KEY,
                        timeout=60,
                    )
                    for n, i in enumerate(batch, start)
                )
            )
        return ids
    finally:
        await channel.close()


async def publish_steadily(
    connection: AbstractConnection, topology: Topology, rate: float, seconds: float
) -> list[tuple[str, float]]:
    """Publish at ``rate`` commands/s for ``seconds``: ``(id, perf_counter at publish)`` each.

    Each publish is stamped just before it is written; a late tick is caught up at once, so
    the average rate holds even when the loop was briefly busy.
    """
    channel = await connection.channel(publisher_confirms=False)
    try:
        exchange = await channel.get_exchange(topology.commands_exchange)
        scheduled_at = far_future()
        sent: list[tuple[str, float]] = []
        start = time.perf_counter()
        for index in range(round(rate * seconds)):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            command_id = str(uuid.uuid4())
            message = command_message(schedule_command(command_id, scheduled_at), command_id)
            sent.append((command_id, time.perf_counter()))
            await exchange.publish(message, COMMAND_ROUTING_KEY)
        return sent
    finally:
        await channel.close()


async def wait_for_consumer(
    connection: AbstractConnection,
    queue: str,
    *,
    timeout: float = 60,
    alive: Callable[[], None] = lambda: None,
) -> None:
    """Wait until something consumes ``queue``: readiness, the same for relay and baseline."""
    channel = await connection.channel()
    try:
        deadline = time.perf_counter() + timeout
        while (await queue_depth(channel, queue))[1] == 0:
            alive()
            if time.perf_counter() > deadline:
                raise TimeoutError(f"nothing consumed {queue} within {timeout:g} s")
            await asyncio.sleep(0.05)
    finally:
        await channel.close()


async def queue_depth(channel: AbstractChannel, name: str) -> tuple[int, int]:
    """``(messages ready, consumers)`` of a queue, by passive declare."""
    queue = await channel.declare_queue(name, passive=True)
    result: Any = queue.declaration_result
    return int(result.message_count or 0), int(result.consumer_count or 0)


@dataclass(frozen=True, slots=True)
class Arrivals:
    """When the first and the last expected result were seen on the tap (perf_counter)."""

    first_at: float
    first_depth: int  # results already there when the first was seen (up to one poll's worth)
    last_at: float
    count: int


class ResultTap:
    """A queue collecting the result events of one topology."""

    def __init__(self, channel: AbstractChannel, queue: aio_pika.abc.AbstractQueue) -> None:
        self.channel = channel
        self.queue = queue

    @classmethod
    async def declare(
        cls, connection: AbstractConnection, workspace: Workspace, topology: Topology
    ) -> ResultTap:
        """Declare the topology (as the relay would) and a tap bound to its result keys."""
        await declare_topology(connection, topology)
        channel = await connection.channel()
        name = workspace.extra_queue(f"{topology.prefix}.bench-results")
        queue = await channel.declare_queue(name, durable=False)
        for key in RESULT_ROUTING_KEYS:
            await queue.bind(topology.events_exchange, routing_key=key)
        return cls(channel, queue)

    async def depth(self) -> int:
        return (await queue_depth(self.channel, self.queue.name))[0]

    async def wait_for(
        self,
        count: int,
        *,
        timeout: float,
        alive: Callable[[], None] = lambda: None,
        on_first: Callable[[], None] = lambda: None,
    ) -> Arrivals:
        """Poll the depth until ``count`` results are in.

        ``alive`` raises if a child died; ``on_first`` runs when the first result shows up.
        """
        deadline = time.perf_counter() + timeout
        first: tuple[float, int] | None = None
        depth = 0
        while time.perf_counter() < deadline:
            depth = await self.depth()
            now = time.perf_counter()
            if depth and first is None:
                first = (now, depth)
                on_first()
            if depth >= count and first is not None:
                return Arrivals(first[0], first[1], now, depth)
            alive()
            await asyncio.sleep(DEPTH_POLL_SECONDS)
        raise TimeoutError(f"only {depth} of {count} result events within {timeout:g} s")

    async def stamp_arrivals(self) -> dict[str, float]:
        """Consume live from now on: result correlation id -> perf_counter at arrival."""
        arrivals: dict[str, float] = {}

        async def stamp(message: AbstractIncomingMessage) -> None:
            arrivals[message.correlation_id or ""] = time.perf_counter()

        await self.channel.set_qos(prefetch_count=1000)
        await self.queue.consume(stamp, no_ack=True)
        return arrivals

    async def read(self, count: int, *, timeout: float = 60) -> list[dict[str, Any]]:
        """Consume ``count`` events (already on the tap) and return their decoded bodies."""
        events: list[dict[str, Any]] = []
        done = asyncio.Event()

        async def take(message: AbstractIncomingMessage) -> None:
            events.append(json.loads(message.body))
            if len(events) >= count:
                done.set()

        await self.channel.set_qos(prefetch_count=1000)
        tag = await self.queue.consume(take, no_ack=True)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        finally:
            await self.queue.cancel(tag)
        return events

    async def close(self) -> None:
        await self.channel.close()


def attempts_of(events: Sequence[dict[str, Any]]) -> list[int]:
    return [int(event.get("data", {}).get("attempts") or 0) for event in events]
