"""The dead-letter queue as a thing an operator can look at, replay from and purge.

Reading is done with unacknowledged ``basic.get``s on a private channel: closing the channel puts
every message that was looked at but not replayed back in the queue. The dead-letter queue is a
quorum queue, where that return is applied after the close is acknowledged, so each reader waits
until the queue holds again what it put back: a peek followed at once by a replay sees it all.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from service.bus.publisher import OriginalMessage, Publisher
from service.contract.amqp import (
    ATTEMPTS_HEADER,
    ERROR_CODE_HEADER,
    ERROR_MESSAGE_HEADER,
    FAILED_AT_HEADER,
    REASON_HEADERS,
    ROUTING_KEY_HEADER,
    Topology,
)


@dataclass(frozen=True, slots=True)
class ParkedCommand:
    """One dead-lettered command, as ``dlq list`` shows it."""

    id: str
    code: str
    message: str
    attempts: int
    failed_at: datetime | None
    routing_key: str

    def age_seconds(self, now: float) -> float | None:
        return None if self.failed_at is None else max(0.0, now - self.failed_at.timestamp())


def describe(message: AbstractIncomingMessage) -> ParkedCommand:
    headers = dict(message.headers or {})
    failed_at = headers.get(FAILED_AT_HEADER)
    try:
        when = datetime.fromisoformat(str(failed_at)) if failed_at else None
    except ValueError:
        when = None
    return ParkedCommand(
        id=_command_id(message),
        code=str(headers.get(ERROR_CODE_HEADER, "")),
        message=str(headers.get(ERROR_MESSAGE_HEADER, "")),
        attempts=int(str(headers.get(ATTEMPTS_HEADER, 0) or 0)),
        failed_at=when,
        routing_key=str(headers.get(ROUTING_KEY_HEADER, "")),
    )


def _command_id(message: AbstractIncomingMessage) -> str:
    """The CloudEvents id: from a structured body, else (binary mode) the AMQP message id."""
    try:
        body = json.loads(message.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and "specversion" in body and body.get("id"):
        return str(body["id"])
    return message.message_id or "(no id)"


class DeadLetterQueue:
    def __init__(
        self, connection: AbstractConnection, topology: Topology, *, settle_seconds: float = 5.0
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._settle_seconds = settle_seconds

    async def _ready_count(self) -> int:
        channel = await self._connection.channel()
        try:
            queue = await channel.declare_queue(self._topology.dead_letter_queue, passive=True)
            return int(queue.declaration_result.message_count or 0)
        finally:
            await channel.close()

    async def _settle(self, at_least: int) -> None:
        """Wait (bounded) until the ready count shows what a closed channel gave back.

        Nothing but these tools takes from the dead-letter queue, so the count only grows while
        the returns land; a concurrent purge or replay ends the wait at the deadline at worst.
        The broker tells no one when a return lands, so the count is polled.
        """
        deadline = time.monotonic() + self._settle_seconds
        while at_least > 0 and time.monotonic() < deadline:
            if await self._ready_count() >= at_least:
                return
            await asyncio.sleep(0.02)

    async def peek(self, *, limit: int = 100) -> list[ParkedCommand]:
        channel = await self._connection.channel()
        parked: list[ParkedCommand] = []
        try:
            queue = await channel.get_queue(self._topology.dead_letter_queue)
            while len(parked) < limit:
                message = await queue.get(fail=False, no_ack=False)
                if message is None:
                    break
                parked.append(describe(message))
        finally:
            await channel.close()  # requeues everything we looked at
        await self._settle(len(parked))
        return parked

    async def replay(
        self, publisher: Publisher, select: Callable[[ParkedCommand], bool], *, limit: int = 10_000
    ) -> list[ParkedCommand]:
        """Send every selected command back to the commands exchange, without reason headers.

        Each command parked when the run starts is looked at once: a replayed command that fails
        again is parked behind them, so reading only as many as were there never reaches it, and
        one run never replays a command twice.
        """
        channel = await self._connection.channel()
        replayed: list[ParkedCommand] = []
        left = 0
        try:
            queue = await channel.declare_queue(self._topology.dead_letter_queue, passive=True)
            parked_now = queue.declaration_result.message_count or 0
            for _ in range(min(limit, parked_now)):
                message = await queue.get(fail=False, no_ack=False)
                if message is None:
                    break
                parked = describe(message)
                if not parked.routing_key or not select(parked):
                    left += 1
                    continue  # left unacked: requeued when the channel closes
                await publisher.republish_raw(
                    OriginalMessage.from_incoming(message, routing_key=parked.routing_key),
                    drop=(*REASON_HEADERS, ROUTING_KEY_HEADER),
                )
                await message.ack()
                replayed.append(parked)
        finally:
            await channel.close()
        await self._settle(left)
        return replayed

    async def purge(self) -> int:
        channel = await self._connection.channel()
        try:
            queue = await channel.get_queue(self._topology.dead_letter_queue)
            result: Any = await queue.purge()
            return int(getattr(result, "message_count", 0) or 0)
        finally:
            await channel.close()
