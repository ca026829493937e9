"""Fixtures of the Tether sandbox suite: a sandbox under the test client and a logged-in caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.providers.tether.sandbox.app import create_tether_sandbox_app
from service.providers.tether.sandbox.config import (
    DEFAULT_EMAIL,
    DEFAULT_PASSWORD,
    TetherSandboxConfig,
)

EXISTING = "665f1a0c0e0a4b001a2c9f01"
CAMPAIGN: dict[str, Any] = {
    "name": "Q2 Lead Gen",
    "message": "Hi {{firstName}}, are you still interested?",
    "newContacts": [{"firstName": "Jamie", "phoneNumber": "+14155550133"}],
    "selectedExistingContacts": [{"_id": EXISTING, "phoneNumber": "+14165550100"}],
    "scheduleDate": "2030-05-20T15:00:00.000Z",
    "isAutopilot": False,
    "type": "sms",
}


@dataclass
class Api:
    """Calls the sandbox like a Tether client: ``Authorization: Bearer`` once logged in."""

    client: TestClient[web.Request, web.Application]
    token: str | None = None

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        bearer = token or self.token
        headers = (
            {"Authorization": f"Bearer {bearer}"} if bearer and path.startswith("/api") else {}
        )
        response = await self.client.request(method, path, json=body, headers=headers)
        return response.status, await response.json()

    async def login(self) -> str:
        status, body = await self.call(
            "POST", "/api/auth/login", {"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}
        )
        assert status == 200, body
        self.token = str(body["token"])
        return self.token

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status < 300, (status, answer)
        return answer

    async def log(self, path: str = "/api/") -> list[dict[str, Any]]:
        return list((await self.ok("GET", f"/_sandbox/requests?path={path}"))["data"])


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(aiohttp_client: Any) -> ApiFactory:
    async def make(*, login: bool = True, **config: Any) -> Api:
        app = create_tether_sandbox_app(TetherSandboxConfig(**config))
        api = Api(await aiohttp_client(app))
        if login:
            await api.login()
        return api

    return make


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    return await make_api()
