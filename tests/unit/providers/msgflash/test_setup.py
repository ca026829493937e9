"""Each MsgFlash account gets parts of its own; the embedded sandbox gives each account's key a
sandbox account of its own."""

from __future__ import annotations

from typing import Any

from service.accounts import MsgFlashAccount
from service.metrics import Metrics
from service.providers.msgflash.setup import msgflash_parts
from service.settings import DEFAULT_SANDBOX_API_KEY, load_settings
from service.tracing.spans import Tracing

ACME_KEY = "msgf_live_" + "ac" * 32
ELSEWHERE_KEY = "msgf_live_" + "e1" * 32


def _accounts(sandbox_url: str = "http://a") -> dict[str, MsgFlashAccount]:
    return {
        "default": MsgFlashAccount("default", DEFAULT_SANDBOX_API_KEY, sandbox_url, 10),
        "acme": MsgFlashAccount("acme", ACME_KEY, sandbox_url, 3),
        "acme-eu": MsgFlashAccount("acme-eu", ACME_KEY, sandbox_url, 3),  # the same key
        "elsewhere": MsgFlashAccount("elsewhere", ELSEWHERE_KEY, "https://srv.msgflash.com", 3),
    }


def test_every_account_has_its_own_client_and_limiter() -> None:
    parts = msgflash_parts(load_settings({}, relay=False), Metrics(), _accounts(), Tracing())
    assert set(parts.accounts) == {"default", "acme", "acme-eu", "elsewhere"}
    default, acme = parts.accounts["default"], parts.accounts["acme"]
    assert default.client is not acme.client and default.limiter is not acme.limiter
    assert (parts.sandbox, parts.sandboxed) == (None, ())


async def test_the_embedded_sandbox_has_an_account_per_key_of_the_accounts_calling_it(
    aiohttp_client: Any,
) -> None:
    settings = load_settings({"RELAY_SANDBOX": "1"})
    accounts = _accounts(settings.msgflash_url)
    parts = msgflash_parts(settings, Metrics(), accounts, Tracing())
    assert parts.sandbox is not None and parts.sandboxed == ("default", "acme")
    client = await aiohttp_client(parts.sandbox)
    listed = await (await client.get("/_sandbox/accounts")).json()
    assert [(a["name"], a["apiKeys"]) for a in listed["data"]] == [("default", 1), ("acme", 1)]
    for key, name in ((DEFAULT_SANDBOX_API_KEY, "default"), (ACME_KEY, "acme")):
        response = await client.get("/api/v1/me", headers={"x-api-key": key})
        assert response.status == 200, name
    log = await (await client.get("/_sandbox/requests")).json()
    assert [entry["account"] for entry in log["data"]] == ["default", "acme"]
    # An account calling another MsgFlash has no account in the sandbox.
    refused = await client.get("/api/v1/me", headers={"x-api-key": ELSEWHERE_KEY})
    assert refused.status == 401
