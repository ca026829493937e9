"""Acks of a consumer channel's deliveries, sent as few frames as the broker allows.

An ack costs a frame, a trip through aiormq's writer task and a ``send()`` per delivery, and
the broker's work to take it. So the acks of ACK_WINDOW_SECONDS are sent together: one
``basic.ack(multiple=True)`` for a run of consecutive tags, one plain ack for each tag that
sits above a delivery still in progress (a slow command never holds the others' acks back,
which would stall the prefetch window). A command's events are published and confirmed before
its ack, so the window delays nothing anyone waits for, only the refill of the prefetch window,
by a few milliseconds. How many frames this saves is in benchmarks/README.md.

Why this can never ack a delivery that was not meant to be: delivery tags of a channel are
consecutive from 1, and a multiple ack only ever ends a run whose every tag was acked through
here. A tag that is still in progress, or that never reached the pipeline, stops the run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiormq.abc
import structlog
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError

from service.contract.errors import BrokerUnavailable

log = structlog.get_logger("service.bus.acks")

_CHANNEL_CLOSED = "could not ack: the consumer channel is closed"

# How long an ack waits for others to share its frame.
ACK_WINDOW_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class AckFrame:
    """One ``basic.ack``: ``delivery_tag``, and whether it covers every tag up to it."""

    delivery_tag: int
    multiple: bool


@dataclass(slots=True)
class AckLedger:
    """Which tags of one channel are acked, and the frames that say so. Pure: no I/O.

    ``floor``: every tag up to it is settled (its ack sent, or covered by a multiple ack).
    ``acked``: tags above the floor acked by the pipeline, mapped to whether their frame was
    sent already (alone, above a tag in progress); ``unsent``: the acks since the last frames,
    so a flush costs what it sends, not what sits above a slow delivery. Once a delivery is
    left unacked, multiple acks above it would cover it: from then on every ack goes alone.
    """

    floor: int = 0
    acked: dict[int, bool] = field(default_factory=dict)
    unsent: list[int] = field(default_factory=list)
    contiguous: bool = True

    def ack(self, delivery_tag: int) -> None:
        if delivery_tag <= self.floor or delivery_tag in self.acked:
            return  # acked twice: the broker would close the channel over a second frame
        if self.contiguous:
            self.acked[delivery_tag] = False
        self.unsent.append(delivery_tag)

    def settle(self, delivery_tag: int) -> None:
        """The pipeline is done with ``delivery_tag``: unless it was acked, it stays unacked
        until the channel closes (the broker then requeues it), and no multiple ack may ever
        cover it."""
        if self.contiguous and delivery_tag > self.floor and delivery_tag not in self.acked:
            self.contiguous = False
            self.acked.clear()

    @property
    def pending(self) -> bool:
        return bool(self.unsent)

    def frames(self) -> list[AckFrame]:
        """The frames that send every pending ack, and the ledger moved past them."""
        unsent, self.unsent = self.unsent, []
        if not self.contiguous:
            return [AckFrame(tag, multiple=False) for tag in sorted(unsent)]
        frames: list[AckFrame] = []
        run_end: int | None = None  # the highest tag of the run whose frame is not sent yet
        run_length = 0
        tag = self.floor + 1
        while tag in self.acked:
            if not self.acked.pop(tag):
                run_end = tag
                run_length += 1
            tag += 1
        self.floor = tag - 1
        if run_end is not None:
            frames.append(AckFrame(run_end, multiple=run_length > 1))
        for above in sorted(unsent):
            if above > self.floor and self.acked.get(above) is False:
                frames.append(AckFrame(above, multiple=False))
                self.acked[above] = True
        return frames


class ChannelAcks:
    """The acks of one consumer channel, flushed once per ACK_WINDOW_SECONDS.

    One sender task at a time writes a channel's frames, and it takes them from the ledger
    when it sends, not when a flush was asked for: frames reach the broker in the order the
    ledger made them. (Separate tasks could overtake each other on aiormq's bounded write
    queue, and a multiple ack ahead of a single ack it covers closes the channel.)
    """

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self._channel = channel
        self._ledger = AckLedger()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self.frames_sent = 0  # observability and tests: far fewer than acks under load

    @property
    def closed(self) -> bool:
        return self._channel.is_closed

    def ack(self, delivery_tag: int) -> None:
        """Ack within ACK_WINDOW_SECONDS; raises at once if the channel is gone (the broker then
        requeues the delivery itself)."""
        if self._channel.is_closed:
            raise BrokerUnavailable(_CHANNEL_CLOSED)
        self._ledger.ack(delivery_tag)
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(ACK_WINDOW_SECONDS, self._flush)

    def settle(self, delivery_tag: int) -> None:
        self._ledger.settle(delivery_tag)

    async def sent(self) -> None:
        """Send what is pending now and wait until it is written to the connection, so a drain
        that ends with the connection closing loses none. Returns at once for a closed
        channel: its deliveries are back with the broker."""
        if self._channel.is_closed:
            self.discard()
            return
        self._flush()
        if self._sender is not None:
            await asyncio.wait({self._sender})

    def discard(self) -> None:
        """Stop sending: the channel is gone (a sender blocked on a dead connection's write
        queue would otherwise wait forever)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._sender is not None:
            self._sender.cancel()

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._ledger.pending and (self._sender is None or self._sender.done()):
            self._sender = asyncio.create_task(self._send(), name="acks")

    async def _send(self) -> None:
        try:
            while frames := self._ledger.frames():
                for frame in frames:
                    # The last frame of a batch waits until it is written out; the others are
                    # only queued for the connection's writer, in order, ahead of it.
                    last = frame is frames[-1]
                    await self._channel.basic_ack(frame.delivery_tag, frame.multiple, wait=last)
                    self.frames_sent += 1
        except (AMQPError, ConnectionError, RuntimeError) as exc:  # aio-pika's is aiormq's
            # The channel went away between the ack and its frame: the broker requeues every
            # delivery it had not seen acked, and the claims keep them from running twice.
            log.warning("acks_not_sent", reason=type(exc).__name__)


class Acks:
    """One ``ChannelAcks`` per consumer channel; closed channels are forgotten as new ones come
    (after a reconnect), so the registry holds at most the live channels and one closed each."""

    def __init__(self) -> None:
        self._channels: dict[aiormq.abc.AbstractChannel, ChannelAcks] = {}

    def __len__(self) -> int:
        return len(self._channels)

    async def sent(self) -> None:
        """Every open channel's pending acks written to the connection (see ChannelAcks)."""
        for acks in list(self._channels.values()):
            await acks.sent()

    def for_message(self, message: AbstractIncomingMessage) -> ChannelAcks:
        """The acks of the channel ``message`` came on; ``BrokerUnavailable`` once it is closed
        (the broker then requeues the delivery itself)."""
        try:
            channel = message.channel
        except aiormq.exceptions.ChannelInvalidStateError as exc:
            raise BrokerUnavailable(_CHANNEL_CLOSED) from exc
        acks = self._channels.get(channel)
        if acks is None:
            # A closed channel's acks can no longer be sent: the broker requeued its deliveries.
            for gone in [a for a in self._channels.values() if a.closed]:
                gone.discard()
            self._channels = {c: a for c, a in self._channels.items() if not a.closed}
            acks = self._channels[channel] = ChannelAcks(channel)
        return acks
