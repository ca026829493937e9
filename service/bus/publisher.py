"""Publishing with publisher confirms: events, reply_to copies, dead-letters and deferred retries.

Every publish is persistent, JSON and ``mandatory``; it returns only once the broker confirmed.
When the broker cannot take it, ``BrokerUnavailable`` is raised fast, so the caller leaves the
command unacked and it is redelivered.

The frames themselves go out through ``confirms``, the one adapter below aio-pika.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, DeliveryMode

from service.bus.confirms import ConfirmChannel, Properties, properties
from service.contract.amqp import (
    ATTEMPTS_HEADER,
    CLOUDEVENTS_JSON,
    ERROR_CODE_HEADER,
    ERROR_MESSAGE_HEADER,
    FAILED_AT_HEADER,
    REPLAYED_HEADER,
    RETRY_TIER_HEADER,
    ROUTING_KEY_HEADER,
    Topology,
)
from service.contract.errors import BrokerUnavailable, NoQueueBound
from service.contract.events import OutgoingEvent
from service.metrics import Metrics
from service.tracing.spans import Tracing

log = structlog.get_logger("service.bus.publisher")


@dataclass(frozen=True, slots=True)
class OriginalMessage:
    """A command exactly as it arrived, so it can be parked or deferred unchanged."""

    body: bytes
    routing_key: str
    content_type: str | None = None
    message_id: str | None = None
    type: str | None = None
    app_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    timestamp: Any = None
    headers: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_incoming(
        cls, message: AbstractIncomingMessage, *, routing_key: str | None = None
    ) -> OriginalMessage:
        return cls(
            body=message.body,
            routing_key=(message.routing_key or "") if routing_key is None else routing_key,
            content_type=message.content_type,
            message_id=message.message_id,
            type=message.type,
            app_id=message.app_id,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            timestamp=message.timestamp,
            headers=dict(message.headers or {}),
        )

    def with_headers(self, headers: Mapping[str, Any]) -> OriginalMessage:
        return replace(self, headers=dict(headers))

    def to_message(self, extra_headers: Mapping[str, Any]) -> aio_pika.Message:
        return aio_pika.Message(
            self.body,
            content_type=self.content_type,
            message_id=self.message_id,
            type=self.type,
            app_id=self.app_id,
            correlation_id=self.correlation_id,
            reply_to=self.reply_to,
            timestamp=self.timestamp,
            headers={**self.headers, **extra_headers},
            delivery_mode=DeliveryMode.PERSISTENT,
        )


def reason_headers(
    original: OriginalMessage, *, code: str, message: str, attempts: int, failed_at: str
) -> dict[str, Any]:
    """Why a command was parked, as the headers ``dlq list`` shows and ``dlq replay`` filters on.

    Pure, so tests that record dead-letters see exactly the headers the broker would get.
    """
    return {
        ERROR_CODE_HEADER: code,
        ERROR_MESSAGE_HEADER: message[:1000],
        ATTEMPTS_HEADER: attempts,
        ROUTING_KEY_HEADER: original.routing_key,
        FAILED_AT_HEADER: failed_at,
    }


class Publisher:
    """Owns the confirm-mode channel; the broker supervisor swaps it on every reconnect."""

    def __init__(
        self,
        topology: Topology,
        metrics: Metrics,
        *,
        timeout: float = 10.0,
        tracing: Tracing | None = None,
    ) -> None:
        self._topology = topology
        self._metrics = metrics
        self._timeout = timeout
        self._tracing = tracing or Tracing()  # None: off
        self._channel: ConfirmChannel | None = None
        self._unroutable_seen: set[str] = set()

    async def attach(self, connection: aio_pika.abc.AbstractConnection) -> AbstractChannel:
        self._channel, channel = await ConfirmChannel.open(connection, timeout=self._timeout)
        return channel

    def detach(self) -> None:
        self._channel = None

    @property
    def available(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    async def publish_event(
        self,
        event: OutgoingEvent,
        *,
        correlation_id: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        """Publish on the events exchange, and to ``reply_to`` when the command asked for it."""
        properties = _event_properties(event, correlation_id)
        delivered = await self._publish(
            self._topology.events_exchange, event.routing_key, event.body, properties
        )
        if not delivered:
            self._unroutable(event)
        self._metrics.event_published(event.routing_key).inc()
        if reply_to and not await self._publish("", reply_to, event.body, properties):
            log.warning("reply_to_unroutable", replyTo=reply_to, eventType=event.type)

    def _unroutable(self, event: OutgoingEvent) -> None:
        """No queue is bound for this routing key: nobody subscribed yet. That is the operator's
        choice, not a reason to redeliver the command, nor to log every event of a standalone
        relay: said once per routing key, then counted."""
        self._metrics.event_unroutable(event.routing_key).inc()
        if event.routing_key in self._unroutable_seen:
            return
        self._unroutable_seen.add(event.routing_key)
        log.warning(
            "event_unroutable",
            routingKey=event.routing_key,
            eventType=event.type,
            hint=f"no queue is bound to {self._topology.events_exchange!r} for this routing "
            "key, so nobody receives these events: bind one to subscribe (fine while nothing "
            "consumes them). Not logged again; counted in relay_events_unroutable_total",
        )

    async def publish_command(
        self, body: bytes, routing_key: str, *, message_id: str, content_type: str
    ) -> None:
        """Publish a command on the commands exchange (HTTP ingress)."""
        message = aio_pika.Message(
            body,
            content_type=content_type,
            message_id=message_id,
            delivery_mode=DeliveryMode.PERSISTENT,
        )
        if not await self._publish_message(self._topology.commands_exchange, routing_key, message):
            raise NoQueueBound(
                f"no queue is bound for routing key {routing_key!r} on "
                f"{self._topology.commands_exchange!r}: start the relay so it declares its topology"
            )

    async def dead_letter(
        self,
        original: OriginalMessage,
        *,
        code: str,
        message: str,
        attempts: int,
        failed_at: str,
        account: str,
    ) -> None:
        headers = reason_headers(
            original, code=code, message=message, attempts=attempts, failed_at=failed_at
        )
        amqp_message = original.to_message(headers)
        if not await self._publish_message("", self._topology.dead_letter_queue, amqp_message):
            raise BrokerUnavailable(
                f"dead-letter queue {self._topology.dead_letter_queue!r} is gone"
            )
        self._metrics.dead_lettered.labels(code, account).inc()

    async def defer(
        self, original: OriginalMessage, *, tier: int, headers: Mapping[str, Any]
    ) -> None:
        """Park a command in retry tier ``tier``; it comes back under its own routing key."""
        queue = self._topology.retry_tiers[tier].queue
        amqp_message = original.to_message({**headers, RETRY_TIER_HEADER: queue})
        if not await self._publish_message(
            self._topology.retry_exchange, original.routing_key, amqp_message
        ):
            raise BrokerUnavailable(
                f"retry tier {tier} of {self._topology.retry_exchange!r} is gone"
            )

    async def move(self, original: OriginalMessage, queue: str, headers: Mapping[str, Any]) -> None:
        """Put a command in ``queue`` (an account's own), with its properties and headers."""
        if not await self._publish_message("", queue, original.to_message(headers)):
            raise BrokerUnavailable(f"queue {queue!r} is gone: the command was not moved")

    async def republish_raw(self, original: OriginalMessage, *, drop: tuple[str, ...]) -> None:
        """Send a parked command back to the commands exchange (dead-letter replay)."""
        headers = {k: v for k, v in original.headers.items() if k not in drop}
        headers[REPLAYED_HEADER] = True
        replay = original.with_headers(headers)
        exchange = self._topology.commands_exchange
        if not await self._publish_message(exchange, original.routing_key, replay.to_message({})):
            raise NoQueueBound(
                f"no queue is bound for {original.routing_key!r} on {exchange!r}: start the "
                "relay so it declares its topology, then replay again"
            )

    async def _publish_message(
        self, exchange_name: str, routing_key: str, message: aio_pika.Message
    ) -> bool:
        return await self._publish(exchange_name, routing_key, message.body, message.properties)

    async def _publish(
        self, exchange_name: str, routing_key: str, body: bytes, props: Properties
    ) -> bool:
        """Publish and wait for the confirm. False when the broker returned it as unroutable."""
        channel = self._channel
        if channel is None or channel.is_closed:
            raise BrokerUnavailable("not connected to the broker: the publish was not attempted")
        with self._tracing.publish(
            exchange_name, routing_key, body, props.message_id, props.correlation_id
        ):
            return await channel.publish(exchange_name, routing_key, body, props)


def _event_properties(event: OutgoingEvent, correlation_id: str | None) -> Properties:
    return properties(
        content_type=CLOUDEVENTS_JSON,
        message_id=event.id,
        message_type=event.type,
        app_id="msgflash-relay",
        correlation_id=correlation_id,
        delivery_mode=DeliveryMode.PERSISTENT,
    )
