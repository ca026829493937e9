"""SIGTERM with 200 commands in flight: readiness fails, every one of them finishes, exit 0.

The sandbox holds every send at a gate the test opens, so "200 in flight" is a state the test
waits for rather than a race against a latency: on a busy machine the commands simply take
longer to get there, none can finish early.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import RESULT_TYPES, EventTap, Producer, SandboxHandle, text_command
from tests.integration.test_process_faults import result_ids, wait_for_results

pytestmark = pytest.mark.slow
SENDS = "/api/v1/messages/send"


class SendGate:
    """Holds every send request until ``open`` is set, counting those held."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.held = 0

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == SENDS and not self.open.is_set():
            self.held += 1
            await self.open.wait()
        return await handler(request)


@pytest.fixture
def gate() -> SendGate:
    return SendGate()


@pytest.fixture
async def sandbox(sandbox_config: dict[str, Any], gate: SendGate) -> AsyncIterator[SandboxHandle]:
    """The shared sandbox fixture, with the gate in front of every route."""
    from service.providers.msgflash.sandbox.app import create_sandbox_app
    from service.providers.msgflash.sandbox.config import SandboxConfig

    app = create_sandbox_app(SandboxConfig(**sandbox_config))
    app.middlewares.insert(0, gate.middleware)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield SandboxHandle(url=str(server.make_url("")).rstrip("/"), session=session)
    gate.open.set()
    await server.close()


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds; the bound only turns a hang into a failure."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if await condition():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"still waiting for {what} after {timeout}s")


async def readyz(port: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status


async def test_sigterm_with_200_in_flight_drains_and_exits_0_within_the_bound(
    relay_processes: Any, events: EventTap, producer: Producer, sandbox: SandboxHandle,
    gate: SendGate,
) -> None:  # fmt: skip
    commands = [text_command(f"drain {i}") for i in range(200)]
    relay = relay_processes(
        relay_prefetch=250, relay_drain_seconds=120, relay_msgflash_timeout=300,
        relay_lease_seconds=300,
    )  # fmt: skip
    await relay.start()
    for cmd in commands:
        await producer.publish(cmd)

    async def all_in_flight() -> bool:  # the client's pool holds 100 of them at the gate
        return await relay.metric("relay_commands_in_flight") == 200

    await until(all_in_flight, "200 commands in flight")
    assert gate.held > 0
    assert await relay.metric("relay_ready") == 1
    relay.signal(signal.SIGTERM)

    async def draining() -> bool:
        return await readyz(relay.admin_port) == 503

    await until(draining, "readiness to fail after SIGTERM")
    assert await relay.metric("relay_ready") == 0
    assert result_ids(events) == {}  # nothing finished before the drain began
    gate.open.set()

    assert await relay.wait(180) == 0, relay.tail()
    # Every command finished during the drain, in this relay: none was left for another.
    await wait_for_results(events, {c["id"] for c in commands}, timeout=30)
    assert all(
        e["type"] == "msgflash.message.sent" for e in events.events if e["type"] in RESULT_TYPES
    )
    sends = await sandbox.requests(SENDS, method="POST")
    assert len([r for r in sends if r["status"] == 201]) == 200
