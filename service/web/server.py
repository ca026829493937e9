"""Serving an aiohttp app on a socket, with the limits a port facing the outside needs.

aiohttp bounds header sizes but not the time a client takes to send them, nor how many
connections it holds open: a few clients trickling header bytes keep sockets and handlers
alive for as long as they like. ``ConnectionGuard`` wraps aiohttp's protocol factory to close
a connection whose first request's headers are not in within ``header_timeout`` and to refuse
connections beyond ``max_connections``; later requests on a kept-alive connection are bounded
by aiohttp's keep-alive timeout, set to the same value. Bodies are bounded where they are read
(``bodies.read_bounded``).

A request aiohttp cannot parse is answered a fixed 400 and logged as one line, at most one a
second per port (``EdgeRequestHandler``): aiohttp's own answer echoes the raw input back, and
its own log line is an error with a traceback that carries that input, raw header values (and
any token in them) included, as often as a client cares to send one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import structlog
from aiohttp import web, web_response
from aiohttp.http_exceptions import HttpProcessingError

log = structlog.get_logger("service.web.server")

# What the relay says it is: no product versions for a scanner to match against advisories.
SERVER_NAME = "msgflash-relay"
_END_OF_HEADERS = (b"\r\n\r\n", b"\n\n")
MALFORMED_ANSWER = "400 Bad Request\n"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float  # RELAY_HTTP_HEADER_TIMEOUT
    max_connections: int  # RELAY_HTTP_MAX_CONNECTIONS


class MalformedRequestLog:
    """``http_request_malformed`` lines, at most one per ``every`` seconds; the requests in
    between are counted in the next line's ``suppressed``. Only the client's address and the
    kind of error are logged, never what the client sent."""

    def __init__(self, every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._next_at = float("-inf")
        self._suppressed = 0

    def note(self, client: str | None, error: BaseException) -> None:
        now = self._clock()
        if now < self._next_at:
            self._suppressed += 1
            return
        log.info(
            "http_request_malformed",
            client=client,
            error=type(error).__name__,
            suppressed=self._suppressed,
        )
        self._next_at = now + self._every
        self._suppressed = 0


class EdgeRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, terse about requests it cannot parse."""

    def __init__(self, server: web.Server, malformed: MalformedRequestLog) -> None:
        # What aiohttp's ``Server.__call__`` does, with this class in place of its own.
        super().__init__(server, loop=server._loop, **server._kwargs)
        self._malformed = malformed

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)  # the relay's own fault
        self._malformed.note(request.remote, exc)
        response = web.Response(status=400, text=MALFORMED_ANSWER)
        response.force_close()
        return response


class ConnectionGuard:
    """Protocol factory around aiohttp's: counts live connections and arms the header timer."""

    def __init__(self, server: web.Server, limits: ServerLimits) -> None:
        self._server = server
        self.limits = limits
        self.live = 0
        self.malformed = MalformedRequestLog()

    def __call__(self) -> asyncio.Protocol:
        return _GuardedConnection(self, EdgeRequestHandler(self._server, self.malformed))


class _GuardedConnection(asyncio.Protocol):
    """Forwards everything to aiohttp's handler, once admitted and until its headers are in."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self._guard.live >= self._guard.limits.max_connections:
            log.warning("http_connection_refused", limit=self._guard.limits.max_connections)
            self._transport.abort()
            return
        self._admitted = True
        self._guard.live += 1
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.header_timeout, self._headers_late)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._timer is not None:
            window = self._tail + data
            if any(mark in window for mark in _END_OF_HEADERS):
                self._timer.cancel()
                self._timer = None
            self._tail = window[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._guard.live -= 1
        if self._timer is not None:
            self._timer.cancel()
        self._inner.connection_lost(exc)

    def _headers_late(self) -> None:
        self._timer = None
        log.info("http_headers_timed_out", seconds=self._guard.limits.header_timeout)
        if self._transport is not None:
            self._transport.abort()


class GuardedSite(web.SockSite):
    """``SockSite`` whose connections go through a ``ConnectionGuard``."""

    __slots__ = ("guard",)

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, limits: ServerLimits) -> None:
        super().__init__(runner, sock)  # refuses a runner that is not set up, so it has a server
        self.guard = ConnectionGuard(cast(web.Server, runner.server), limits)

    async def start(self) -> None:
        self._runner._reg_site(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.guard, sock=self._sock, backlog=self._backlog)


@dataclass(frozen=True, slots=True)
class Served:
    runner: web.AppRunner
    port: int


async def serve(
    app: web.Application, host: str, port: int, limits: ServerLimits | None = None
) -> Served:
    """Serve ``app`` on ``host:port`` (the OS picks when 0), guarded when ``limits`` are given.

    The caller owns ``runner.cleanup()``.
    """
    hide_server_version()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    # Between requests on a kept-alive connection, the header timeout holds through aiohttp's.
    keepalive = limits.header_timeout if limits is not None else 75.0
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=5,
        keepalive_timeout=keepalive,
    )
    await runner.setup()
    site = web.SockSite(runner, sock) if limits is None else GuardedSite(runner, sock, limits)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return Served(runner, int(sock.getsockname()[1]))


def hide_server_version() -> None:
    """Every response's ``Server`` header, parse errors' included, names no product version.

    aiohttp writes its own ``Python/x aiohttp/y`` by default, from a module constant that its
    error path reads too; no per-app hook reaches that path, so the constant is set here.
    """
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
