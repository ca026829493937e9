"""The broker link watchdog: a half-open AMQP connection is declared dead within two heartbeats.

Heartbeats alone do not cover it: aiormq gives up on a silent connection only after three
missed heartbeats plus one, checked every half interval, and a consumer on a blackholed link
receives nothing and so notices nothing. The watchdog makes one cheap round trip (a
``basic.qos`` on a channel of its own) every half interval and declares the link dead when an
answer takes longer than one interval, so a link that goes silent right after an answer is
declared dead after at most one and a half intervals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

log = structlog.get_logger("service.bus.watchdog")


async def watch_link(
    connection: AbstractConnection, interval: float, on_silent: Callable[[str], None]
) -> None:
    """Probe ``connection`` until it fails one probe, then call ``on_silent`` with why, once.

    Returns when the connection closes by itself (the supervisor hears of that directly).
    """
    started = time.monotonic()
    try:
        async with asyncio.timeout(interval):
            channel = await connection.channel(publisher_confirms=False)
        while not connection.is_closed:
            async with asyncio.timeout(interval):
                await channel.set_qos(prefetch_count=0)
            await asyncio.sleep(interval / 2)
            started = time.monotonic()
    except TimeoutError:
        silent = round(time.monotonic() - started, 2)
        on_silent(f"no answer from the broker in {silent} s (RELAY_AMQP_HEARTBEAT_SECONDS)")
    except CONNECTION_EXCEPTIONS as exc:
        if not connection.is_closed:
            on_silent(f"the link probe failed: {type(exc).__name__}: {exc}")
