"""With ``RELAY_SANDBOX=1`` the embedded Tether sandbox keeps an organisation per relay Tether
account, opened by that account's own credentials."""

from __future__ import annotations

from typing import Any

from service import accounts
from service.metrics import Metrics
from service.providers.tether.sandbox.config import ORGANIZATION_ID
from service.providers.tether.setup import TetherSide, tether_account, tether_side
from service.settings import load_settings
from service.tracing.spans import Tracing
from tests.providers.tether.sandbox.conftest import CAMPAIGN, Api

CRM_TOKEN = "tk_live_" + "c1" * 16


def _configured() -> dict[str, accounts.TetherAccount]:
    return {
        "default": accounts.TetherAccount("default", None, 5),
        "crm": accounts.TetherAccount("crm", None, 5, api_token=CRM_TOKEN),
        "sales": accounts.TetherAccount("sales", None, 5),
    }


async def test_each_tether_account_has_an_organisation_of_its_own(aiohttp_client: Any) -> None:
    settings = load_settings({"RELAY_SANDBOX": "1"})
    side = tether_side(settings, Metrics(), _configured(), Tracing())
    assert side.sandbox is not None and set(side.accounts) == {"default", "crm", "sales"}
    client = await aiohttp_client(side.sandbox)
    organizations: dict[str, str] = {}
    for name, configured in _configured().items():
        account = tether_account(settings, configured)
        assert account is not None
        credentials = account.credentials
        api = Api(client, credentials.api_token)
        if credentials.uses_login:
            body = {"email": credentials.email, "password": credentials.password}
            status, answer = await api.call("POST", "/api/auth/login", body)
            assert status == 200, name
            api.token = answer["token"]
        created = await api.ok("POST", "/api/campaigns", {**CAMPAIGN, "name": name})
        organizations[name] = created["data"]["organizationId"]
        listed = await api.ok("GET", "/api/campaigns")
        assert [c["name"] for c in listed["data"]] == [name]
    assert organizations["default"] == ORGANIZATION_ID
    assert len(set(organizations.values())) == 3
    await _close(side)


async def test_without_the_sandbox_nothing_is_embedded() -> None:
    configured = {"crm": accounts.TetherAccount("crm", "https://crm.example", 5, api_token="t")}
    side = tether_side(load_settings({}, relay=False), Metrics(), configured, Tracing())
    assert side.sandbox is None and set(side.accounts) == {"crm"}
    await _close(side)


async def _close(side: TetherSide) -> None:
    for parts in side.accounts.values():
        await parts.client.close()
        await parts.limiter.close()
