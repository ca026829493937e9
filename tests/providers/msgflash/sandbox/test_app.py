"""The app's own life: background tasks start with it and are all gone when it stops."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestServer

from service.providers.msgflash.sandbox.app import create_sandbox_app
from service.providers.msgflash.sandbox.config import SandboxConfig
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.settings import DEFAULT_SANDBOX_API_KEY
from tests.providers.msgflash.sandbox.conftest import FAST


def _sandbox_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("sandbox-")]


async def test_stopping_the_app_leaves_no_task_behind() -> None:
    # A slow lifecycle and an endpoint that refuses connections keep work in flight.
    config = SandboxConfig(
        **{**FAST, "lifecycle_step_seconds": 60, "webhook_retry_base_seconds": 60}
    )
    server = TestServer(create_sandbox_app(config), host="127.0.0.1")
    await server.start_server()
    headers = {"x-api-key": DEFAULT_SANDBOX_API_KEY}
    async with aiohttp.ClientSession(str(server.make_url("")), headers=headers) as http:
        hook = {"url": "http://127.0.0.1:9/hook", "events": ["instance.disconnected"]}
        async with http.post("/api/v1/webhooks", json=hook) as response:
            assert response.status == 201
        send = {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "type": "text", "text": "x"}
        async with http.post("/api/v1/messages/send", json=send) as response:
            assert response.status == 201
        patch = {"status": "disconnected"}
        async with http.patch(f"/_sandbox/instances/{INSTANCE_MAIN}", json=patch) as response:
            assert response.status == 200
    names = {task.get_name() for task in _sandbox_tasks()}
    assert "sandbox-message-lifecycle" in names
    assert any(name.startswith("sandbox-webhook-") for name in names)
    await server.close()
    assert _sandbox_tasks() == []
