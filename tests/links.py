"""A loopback TCP proxy whose links can be blackholed and healed: half-open links on demand.

A blackhole is what a NAT or load-balancer drop looks like from both ends: the sockets stay
open, no FIN or RST arrives, bytes just stop, both ways. The proxy stops reading from both
sides, so what the peers write waits in socket buffers, and connections made meanwhile are
accepted and go silent too. ``heal`` resumes every link where it stopped (held bytes are
delivered, as TCP retransmission would after a short partition) or, with
``resume_old=False``, leaves the blackholed links silent for good while new ones flow.

``blackhole(replies_only=True)`` is the nastier half: requests still reach the server, which acts
on them, but its answers never come back (a write applied whose reply was lost).

Loopback only, and bounded in time: a blackhole heals itself after ``max_seconds`` so a
failing test cannot leave a link dead, and ``close`` always returns within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024
CLOSE_SECONDS = 5.0


@dataclass(eq=False)
class Link:
    """One proxied connection: its two pumps and the gate each passes through."""

    requests: asyncio.Event = field(default_factory=asyncio.Event)  # client -> server
    replies: asyncio.Event = field(default_factory=asyncio.Event)  # server -> client
    dead: bool = False  # blackholed for good: never forwards again
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class LinkProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``; see the module doc."""

    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        if target_host not in (LOOPBACK, "localhost"):
            raise ValueError(f"LinkProxy proxies to loopback only, not {target_host!r}")
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: set[Link] = set()
        self._flowing = True
        self._requests_flow = True  # while blackholed: whether requests still cross
        self._auto_heal: asyncio.TimerHandle | None = None
        self.port = 0
        self.accepted = 0

    async def start(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aenter__(self) -> LinkProxy:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def blackholed(self) -> bool:
        return not self._flowing

    @property
    def links(self) -> int:
        """Links currently open through the proxy."""
        return len(self._links)

    def blackhole(self, *, max_seconds: float = 120.0, replies_only: bool = False) -> None:
        """Stop every byte on every link, present and future, until ``heal`` (or the bound);
        with ``replies_only``, only what the server sends back."""
        self._flowing = False
        self._requests_flow = replies_only
        for link in self._links:
            link.replies.clear()
            if not replies_only:
                link.requests.clear()
        self._cancel_auto_heal()
        self._auto_heal = asyncio.get_running_loop().call_later(max_seconds, self.heal)

    def heal(self, *, resume_old: bool = True) -> None:
        """Let bytes flow again; ``resume_old=False`` keeps the blackholed links silent."""
        self._cancel_auto_heal()
        self._flowing = True
        for link in self._links:
            if resume_old and not link.dead:
                link.requests.set()
                link.replies.set()
            else:
                link.dead = True
                link.requests.clear()

    async def close(self) -> None:
        self._cancel_auto_heal()
        if self._server is not None:
            self._server.close()
        links = list(self._links)
        tasks = [task for link in links for task in link.tasks]
        for link in links:
            self._drop(link)
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_SECONDS)

    def _cancel_auto_heal(self) -> None:
        if self._auto_heal is not None:
            self._auto_heal.cancel()
            self._auto_heal = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = Link()
        link.writers.append(writer)
        if self._flowing:
            link.replies.set()
        if self._flowing or self._requests_flow:
            link.requests.set()
        self._links.add(link)
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(*self._target), CLOSE_SECONDS
            )
        except (OSError, TimeoutError):
            self._drop(link)  # the target is down: the client sees a closed connection
            return
        link.writers.append(upstream_writer)
        link.tasks += [
            asyncio.create_task(self._pump(link.requests, reader, upstream_writer)),
            asyncio.create_task(self._pump(link.replies, upstream_reader, writer)),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        self._drop(link)

    async def _pump(
        self, gate: asyncio.Event, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        """Copy one direction while its gate is open; a chunk read just before a blackhole
        waits for the heal too."""
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                await gate.wait()
                data = await source.read(CHUNK)
                await gate.wait()
                if not data:
                    if sink.can_write_eof():
                        sink.write_eof()
                    return
                sink.write(data)
                await sink.drain()

    def _drop(self, link: Link) -> None:
        for task in link.tasks:
            task.cancel()
        for writer in link.writers:
            writer.close()
        self._links.discard(link)
