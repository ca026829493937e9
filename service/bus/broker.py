"""Connection supervision: one AMQP connection, rebuilt from scratch whenever it is lost.

aio-pika's robust connection restores channels and consumers by itself, but not in every case
(a consumer whose channel was closed by the broker can stay gone while the connection looks
healthy). Instead this supervisor uses a plain connection and, on any loss, reconnects with
backoff and re-runs every setup step: topology, publisher channel, consumers. Readiness is then
simply "connected and every consumer active".

A link can also die without closing (a NAT or load-balancer drop: no FIN, no RST). AMQP
heartbeats at ``heartbeat`` seconds let the broker drop its end, and so hand the dead consumer's
unacked deliveries to others; the watchdog (``watchdog.py``) lets this end notice within two
intervals, drop readiness at once and rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from service.bus.watchdog import watch_link
from service.contract.errors import TopologyConflict

log = structlog.get_logger("service.bus.broker")

Setup = Callable[[AbstractConnection], Awaitable[None]]

# Said with the first failed connect of a start, when the broker was never reached: the likely
# causes for someone trying the relay out, and that it keeps trying.
_FIRST_HINT = {
    "hint": "is RabbitMQ running, and AMQP_URL right? `make services` starts a local one; "
    "the relay keeps retrying and is not ready until it connects"
}
# Bound on closing a connection: a dead link never answers the close handshake.
CLOSE_SECONDS = 5.0


class Broker:
    """Keeps a connection up and every setup step applied to it."""

    def __init__(
        self,
        url: str,
        *,
        setups: list[Setup],
        on_lost: Callable[[], None] | None = None,
        initial_delay: float = 0.5,
        max_delay: float = 15.0,
        connect_timeout: float = 10.0,
        heartbeat: int = 5,
    ) -> None:
        self._url = url
        self._setups = setups
        self._on_lost = on_lost
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._connect_timeout = connect_timeout
        self._heartbeat = heartbeat
        self._watchdog: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._connection: AbstractConnection | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.fatal: BaseException | None = None
        self._connected_once = False

    @property
    def connected(self) -> bool:
        return self._ready.is_set() and self._connection is not None

    @property
    def connection(self) -> AbstractConnection | None:
        return self._connection

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="amqp-supervisor")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until connected and set up; raises the fatal error if setup can never succeed."""
        ready = asyncio.create_task(self._ready.wait())
        assert self._task is not None, "start() first"
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        ready.cancel()
        if self.fatal is not None:
            raise self.fatal
        if not done:
            raise TimeoutError(f"the broker was not reachable within {timeout} s (AMQP_URL)")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._stop_watchdog()
        await self._close_connection()
        if self._closing:
            await asyncio.wait(self._closing, timeout=CLOSE_SECONDS * 2)

    def reconnect(self) -> None:
        """Drop the connection so the supervisor rebuilds everything (e.g. a channel died)."""
        connection = self._connection
        if connection is not None and not connection.is_closed:
            asyncio.get_running_loop().create_task(connection.close())

    async def _supervise(self) -> None:
        delay = self._initial_delay
        while not self._stopping:
            lost = asyncio.Event()
            try:
                await self._connect(lost)
            except TopologyConflict as exc:
                log.error("amqp_topology_conflict", error=str(exc))
                self.fatal = exc
                return
            except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
                hint = {} if self._connected_once or delay > self._initial_delay else _FIRST_HINT
                log.warning(
                    "amqp_connect_failed", error=_describe(exc), retryIn=round(delay, 2), **hint
                )
                self._stop_watchdog()
                await self._close_connection()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
                continue
            delay = self._initial_delay
            self._connected_once = True
            log.info("amqp_connected", heartbeatSeconds=self._heartbeat)
            await lost.wait()
            self._stop_watchdog()
            self._ready.clear()
            self._connection = None
            if self._on_lost is not None:
                self._on_lost()
            if not self._stopping:
                log.warning("amqp_connection_lost", retryIn=delay)
                await asyncio.sleep(delay)

    async def _connect(self, lost: asyncio.Event) -> None:
        # The setting wins over a heartbeat= in AMQP_URL: keyword arguments override the query.
        connection = await aio_pika.connect(
            self._url, timeout=self._connect_timeout, heartbeat=self._heartbeat
        )
        self._connection = connection
        connection.close_callbacks.add(lambda *_: lost.set())
        silent = functools.partial(self._silent, connection, lost)
        self._watchdog = asyncio.create_task(
            watch_link(connection, self._heartbeat, silent), name="amqp-watchdog"
        )
        for setup in self._setups:
            await setup(connection)
        self._ready.set()

    def _silent(self, connection: AbstractConnection, lost: asyncio.Event, why: str) -> None:
        """The watchdog's verdict: unready at once, rebuild, close the dead link meanwhile
        (closing waits for a broker that cannot answer, so it must not hold the rebuild up)."""
        log.warning("amqp_link_silent", reason=why)
        self._ready.clear()
        lost.set()
        task = asyncio.create_task(_close(connection), name="amqp-close-silent")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._ready.clear()
        if connection is not None:
            await _close(connection)


async def _close(connection: AbstractConnection) -> None:
    if not connection.is_closed:
        with contextlib.suppress(*CONNECTION_EXCEPTIONS, asyncio.TimeoutError):
            await asyncio.wait_for(connection.close(), timeout=CLOSE_SECONDS)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"


def watch_channel(channel: AbstractChannel, broker: Broker, what: str) -> None:
    """A channel the broker closes under us (not during shutdown) triggers a full rebuild."""

    def closed(_sender: Any, exc: BaseException | None) -> None:
        if exc is not None and broker.connected:
            log.warning("amqp_channel_closed", channel=what, error=_describe(exc))
            broker.reconnect()

    channel.close_callbacks.add(closed)
