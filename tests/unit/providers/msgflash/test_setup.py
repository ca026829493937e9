"""Each MsgFlash account gets parts of its own; the embedded sandbox serves every account's key."""

from __future__ import annotations

from typing import Any

from service.accounts import MsgFlashAccount
from service.metrics import Metrics
from service.providers.msgflash.setup import msgflash_parts
from service.settings import DEFAULT_SANDBOX_API_KEY, load_settings
from service.tracing.spans import Tracing

ACME_KEY = "msgf_live_" + "ac" * 32


def _accounts() -> dict[str, MsgFlashAccount]:
    return {
        "default": MsgFlashAccount("default", DEFAULT_SANDBOX_API_KEY, "http://a", 10),
        "acme": MsgFlashAccount("acme", ACME_KEY, "http://b", 3),
    }


def test_every_account_has_its_own_client_and_limiter() -> None:
    parts = msgflash_parts(load_settings({}, relay=False), Metrics(), _accounts(), Tracing())
    assert set(parts.accounts) == {"default", "acme"}
    default, acme = parts.accounts["default"], parts.accounts["acme"]
    assert default.client is not acme.client and default.limiter is not acme.limiter
    assert parts.client is default.client


async def test_the_embedded_sandbox_accepts_every_accounts_key(aiohttp_client: Any) -> None:
    settings = load_settings({"RELAY_SANDBOX": "1"})
    parts = msgflash_parts(settings, Metrics(), _accounts(), Tracing())
    assert parts.sandbox is not None
    client = await aiohttp_client(parts.sandbox)
    for key in (DEFAULT_SANDBOX_API_KEY, ACME_KEY):
        response = await client.get("/api/v1/me", headers={"x-api-key": key})
        assert response.status == 200, key[-4:]
    refused = await client.get("/api/v1/me", headers={"x-api-key": "msgf_live_" + "0" * 64})
    assert refused.status == 401
