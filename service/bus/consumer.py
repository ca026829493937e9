"""The queue consumer: one queue, its own channel and prefetch, deliveries handed to a callback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, ConsumerTag
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

OnMessage = Callable[[AbstractIncomingMessage], Awaitable[None]]


class QueueConsumer:
    """Consumes one queue on its own channel with its own prefetch."""

    def __init__(self, queue: str, prefetch: int, on_message: OnMessage) -> None:
        self.queue = queue
        self.prefetch = prefetch
        self._on_message = on_message
        self._channel: AbstractChannel | None = None
        self._tag: ConsumerTag | None = None

    @property
    def active(self) -> bool:
        return self._tag is not None and self._channel is not None and not self._channel.is_closed

    async def start(self, connection: AbstractConnection) -> AbstractChannel:
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.get_queue(self.queue, ensure=True)
        self._channel = channel
        self._tag = await queue.consume(self._on_message, no_ack=False)
        return channel

    async def cancel(self) -> None:
        """Stop new deliveries; the channel stays open so in-flight commands can still ack."""
        channel, tag = self._channel, self._tag
        self._tag = None
        if channel is None or tag is None or channel.is_closed:
            return
        with contextlib.suppress(*CONNECTION_EXCEPTIONS, asyncio.TimeoutError):
            queue = await channel.get_queue(self.queue, ensure=False)
            await asyncio.wait_for(queue.cancel(tag), timeout=5)

    def forget(self) -> None:
        self._channel = None
        self._tag = None
