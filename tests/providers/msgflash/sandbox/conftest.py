"""Fixtures of the sandbox suite: a sandbox app under the test client, an API caller with the
default key, bounded waits, and a real local webhook receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.providers.msgflash.sandbox.app import create_sandbox_app
from service.providers.msgflash.sandbox.config import SandboxConfig
from service.settings import DEFAULT_SANDBOX_API_KEY

# Fast by default: a tiny lifecycle step, quick webhook retries, no per-second limiter
# (tests that exercise the limiter build their own sandbox).
FAST = {
    "rate_limit_per_second": None,
    "lifecycle_step_seconds": 0.02,
    "webhook_retry_base_seconds": 0.01,
}


@dataclass
class Api:
    """Calls the sandbox like a MsgFlash client: ``x-api-key`` on every /api request."""

    client: TestClient[web.Request, web.Application]
    key: str = DEFAULT_SANDBOX_API_KEY

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        sent = {"x-api-key": self.key} if path.startswith("/api") else {}
        sent.update(headers or {})
        response = await self.client.request(method, path, json=body, headers=sent)
        return response.status, await response.json()

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.call("GET", path)

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("POST", path, body)

    async def put(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("PUT", path, body)

    async def delete(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("DELETE", path, body)

    async def patch(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("PATCH", path, body)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        """The ``data`` of a call that must succeed."""
        status, answer = await self.call(method, path, body)
        assert status < 300, (status, answer)
        return answer["data"]


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(aiohttp_client: Any) -> ApiFactory:
    """A sandbox with ``FAST`` settings overridden by keyword arguments."""

    async def make(**config: Any) -> Api:
        app = create_sandbox_app(SandboxConfig(**{**FAST, **config}))
        return Api(await aiohttp_client(app))

    return make


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    return await make_api()


async def eventually(
    probe: Callable[[], Awaitable[Any]],
    accept: Callable[[Any], bool],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
) -> Any:
    """Poll ``probe`` until ``accept`` holds (bounded); fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


@dataclass
class Receiver:
    """A real HTTP endpoint that records webhook deliveries and answers a scripted status."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        async with self.arrived:
            self.received.append((dict(request.headers), raw))
            self.arrived.notify_all()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def wait_for(
        self, count: int, *, timeout: float = 5.0
    ) -> list[tuple[dict[str, str], bytes]]:
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: len(self.received) >= count), timeout
            )
        return list(self.received)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    hook.url = str(server.make_url("/hook"))
    yield hook
    await server.close()
