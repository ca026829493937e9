"""Publishing with a confirm, straight on the channel's aiormq layer: the one file of the
relay's publishing path that reaches below aio-pika.

aio-pika's ``Exchange.publish`` wraps the same call, but first waits for each frame to drain
to the socket and only then for the confirm, one more suspension per event; the confirm alone
is what matters (and is what holds publishers back when the broker is slow).
"""

from __future__ import annotations

from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aio_pika.exceptions import AMQPError, PublishError

from service.contract.errors import BrokerUnavailable

Properties = aiormq.spec.Basic.Properties


def properties(**fields: Any) -> Properties:
    """AMQP basic properties (content type, ids, headers, delivery mode, ...)."""
    return Properties(**fields)


class ConfirmChannel:
    """A confirm-mode channel that publishes ``mandatory`` and waits for the broker's answer."""

    def __init__(self, underlay: aiormq.Channel, timeout: float) -> None:
        self._underlay = underlay
        self._timeout = timeout

    @classmethod
    async def open(
        cls, connection: AbstractConnection, *, timeout: float
    ) -> tuple[ConfirmChannel, AbstractChannel]:
        """The confirm channel, and the aio-pika channel it lives on (to watch for closing)."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        underlay = await channel.get_underlay_channel()
        if not isinstance(underlay, aiormq.Channel):  # aio-pika always builds on aiormq's
            raise TypeError(f"unexpected AMQP channel type {type(underlay).__name__}")
        return cls(underlay, timeout), channel

    @property
    def is_closed(self) -> bool:
        return bool(self._underlay.is_closed)

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, props: Properties
    ) -> bool:
        """Publish and wait for the confirm. False when the broker returned it as unroutable;
        ``BrokerUnavailable`` when it did not confirm."""
        try:
            await self._underlay.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=props,
                mandatory=True,
                timeout=self._timeout,
                wait=False,
            )
        except PublishError:
            return False
        except (TimeoutError, AMQPError, aiormq.exceptions.AMQPError, ConnectionError) as exc:
            raise BrokerUnavailable(
                f"the broker did not confirm a publish to {exchange or '(default)'!r} "
                f"with routing key {routing_key!r}: {type(exc).__name__}"
            ) from exc
        return True
