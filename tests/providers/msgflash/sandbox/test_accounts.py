"""Accounts: an API key belongs to one account, and sees that account's data, quota and
webhooks only; the single-account config is one account, ``default``."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from service.providers.msgflash.sandbox.seed import CONTACT_ANA, INSTANCE_MAIN, INSTANCE_OFFLINE
from service.settings import DEFAULT_SANDBOX_API_KEY
from tests.providers.msgflash.sandbox.conftest import Api, ApiFactory, Receiver, eventually

ACME_KEY = "msgf_live_" + "ac" * 32
ACME_SECOND_KEY = "msgf_live_" + "a2" * 32
GLOBEX_KEY = "msgf_live_" + "9b" * 32
TWO_ACCOUNTS: dict[str, Any] = {
    "accounts": [
        {"name": "acme", "api_keys": [ACME_KEY, ACME_SECOND_KEY]},
        {"name": "globex", "api_keys": [GLOBEX_KEY], "plan": "free"},
    ]
}
SEND = "/api/v1/messages/send"


def _text(text: str, instance: str = INSTANCE_MAIN) -> dict[str, Any]:
    return {"instanceId": instance, "to": "+33612345678", "type": "text", "text": text}


async def _accounts(make_api: ApiFactory, **config: Any) -> tuple[Api, Api]:
    acme = await make_api(**{**TWO_ACCOUNTS, **config})
    acme.key = ACME_KEY
    return acme, Api(acme.client, GLOBEX_KEY)


async def test_a_message_is_seen_only_with_a_key_of_its_account(make_api: ApiFactory) -> None:
    acme, globex = await _accounts(make_api)
    sent = await acme.ok("POST", SEND, _text("for acme"))

    assert (await globex.get(f"/api/v1/messages/{sent['id']}"))[0] == 404
    assert await globex.ok("GET", "/api/v1/messages") == {
        "messages": [],
        "nextCursor": None,
        "hasMore": False,
    }
    same_account = Api(acme.client, ACME_SECOND_KEY)
    assert (await same_account.ok("GET", f"/api/v1/messages/{sent['id']}"))["id"] == sent["id"]


async def test_records_made_by_one_account_stay_out_of_the_other(make_api: ApiFactory) -> None:
    acme, globex = await _accounts(make_api)
    contact = await acme.ok("POST", "/api/v1/contacts", {"name": "Dee", "phone": "+34600000001"})
    await acme.ok("DELETE", f"/api/v1/contacts/{CONTACT_ANA}")
    await acme.ok("POST", "/api/v1/contacts/groups", {"name": "acme only"})

    assert (await globex.get(f"/api/v1/contacts/{contact['id']}"))[0] == 404
    assert (await globex.ok("GET", f"/api/v1/contacts/{CONTACT_ANA}"))["name"] == "Ana Lima"
    groups = await globex.ok("GET", "/api/v1/contacts/groups")
    assert "acme only" not in [group["name"] for group in groups["groups"]]
    # Same phone in another account: no conflict, as each account has its own address book.
    status, _ = await globex.post("/api/v1/contacts", {"name": "Dee", "phone": "+34600000001"})
    assert status == 201


async def test_each_account_has_its_own_plan_and_counts_its_own_usage(
    make_api: ApiFactory,
) -> None:
    acme, globex = await _accounts(make_api)
    await acme.ok("POST", SEND, _text("one"))
    await acme.ok("POST", SEND, _text("two"))

    acme_usage = await acme.ok("GET", "/api/v1/billing/usage")
    globex_usage = await globex.ok("GET", "/api/v1/billing/usage")
    assert (acme_usage["plan"]["code"], globex_usage["plan"]["code"]) == ("max", "free")
    assert (acme_usage["usage"]["messagesCount"], globex_usage["usage"]["messagesCount"]) == (2, 0)
    keys = (acme_usage["usage"]["activeApiKeysCount"], globex_usage["usage"]["activeApiKeysCount"])
    assert keys == (2, 1)
    # Every admitted request counts, in the account of its key: two sends and a read, one read.
    requests = (acme_usage["usage"]["apiRequestsCount"], globex_usage["usage"]["apiRequestsCount"])
    assert requests == (3, 1)


async def test_a_used_up_outbound_quota_blocks_only_its_account(make_api: ApiFactory) -> None:
    acme, globex = await _accounts(make_api)
    await acme.ok("PUT", "/_sandbox/limits?account=acme", {"monthlyOutboundQuota": 1})
    await acme.ok("POST", SEND, _text("first"))

    status, body = await acme.post(SEND, _text("over"))
    assert (status, body["error"]["code"]) == (429, "MONTHLY_OUTBOUND_QUOTA_EXCEEDED")
    assert (await globex.post(SEND, _text("still fine")))[0] == 201


async def test_the_rate_limit_stays_per_key_within_an_account(make_api: ApiFactory) -> None:
    acme, _ = await _accounts(make_api, rate_limit_per_second=2.0)
    second = Api(acme.client, ACME_SECOND_KEY)
    statuses = [(await api.get("/api/v1/instances"))[0] for api in (acme, acme, second, second)]
    assert statuses == [200, 200, 200, 200]
    assert (await acme.get("/api/v1/instances"))[0] == 429


def _signed_by(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-MsgFlash-Signature"], expected)


async def test_webhooks_carry_only_their_accounts_events_signed_with_its_secret(
    make_api: ApiFactory, receiver: Receiver
) -> None:
    acme, globex = await _accounts(make_api)
    events = {"url": receiver.url, "events": ["message.failed"]}
    acme_hook = await acme.ok("POST", "/api/v1/webhooks", events)
    globex_hook = await globex.ok("POST", "/api/v1/webhooks", events)
    assert acme_hook["secret"] != globex_hook["secret"]

    sent = await globex.ok("POST", SEND, _text("to fail", INSTANCE_OFFLINE))
    [(headers, raw)] = await receiver.wait_for(1)

    assert json.loads(raw)["messageId"] == sent["id"]
    assert _signed_by(globex_hook["secret"], headers, raw)
    assert not _signed_by(acme_hook["secret"], headers, raw)
    assert [hook["id"] for hook in await globex.ok("GET", "/api/v1/webhooks")] == [
        globex_hook["id"]
    ]
    assert [hook["id"] for hook in await acme.ok("GET", "/api/v1/webhooks")] == [acme_hook["id"]]
    deliveries = await eventually(
        lambda: acme.ok("GET", "/_sandbox/webhook-deliveries?account=globex"), bool
    )
    assert [(d["account"], d["webhookId"]) for d in deliveries] == [("globex", globex_hook["id"])]
    assert await acme.ok("GET", "/_sandbox/webhook-deliveries?account=acme") == []


async def test_the_request_log_names_the_account_never_the_key(make_api: ApiFactory) -> None:
    acme, globex = await _accounts(make_api)
    await acme.get("/api/v1/instances")
    await globex.get("/api/v1/instances")
    await Api(acme.client, DEFAULT_SANDBOX_API_KEY).get("/api/v1/instances")

    log = await acme.ok("GET", "/_sandbox/requests")
    assert [(entry["account"], entry["status"]) for entry in log] == [
        ("acme", 200),
        ("globex", 200),
        (None, 401),
    ]
    assert GLOBEX_KEY not in json.dumps(log) and ACME_KEY not in json.dumps(log)
    only_globex = await acme.ok("GET", "/_sandbox/requests?account=globex")
    assert [entry["seq"] for entry in only_globex] == [log[1]["seq"]]


async def test_admin_routes_about_one_account_name_it_when_there_are_several(
    make_api: ApiFactory,
) -> None:
    acme, globex = await _accounts(make_api)
    status, body = await acme.put("/_sandbox/plan", {"plan": "pro"})
    assert status == 400 and body["error"]["details"][0]["field"] == "account"
    assert "acme, globex" in body["error"]["details"][0]["message"]
    assert (await acme.put("/_sandbox/plan?account=initech", {"plan": "pro"}))[0] == 400

    await acme.ok("PUT", "/_sandbox/plan?account=globex", {"plan": "pro"})
    assert (await globex.ok("GET", "/api/v1/me"))["plan"] == "pro"
    assert (await acme.ok("GET", "/api/v1/me"))["plan"] == "max"
    assert await acme.ok("GET", "/_sandbox/accounts") == [
        {"name": "acme", "plan": "max", "apiKeys": 2},
        {"name": "globex", "plan": "pro", "apiKeys": 1},
    ]


async def test_an_instance_changed_for_one_account_is_unchanged_in_the_other(
    make_api: ApiFactory,
) -> None:
    acme, globex = await _accounts(make_api)
    path = f"/_sandbox/instances/{INSTANCE_MAIN}?account=acme"
    await acme.ok("PATCH", path, {"status": "disconnected"})

    assert (await acme.ok("GET", f"/api/v1/instances/{INSTANCE_MAIN}"))["status"] == "disconnected"
    assert (await globex.ok("GET", f"/api/v1/instances/{INSTANCE_MAIN}"))["status"] == "connected"


async def test_reset_returns_every_account_to_its_seed(make_api: ApiFactory) -> None:
    acme, globex = await _accounts(make_api)
    await acme.ok("POST", SEND, _text("gone after the reset"))
    await acme.ok("PUT", "/_sandbox/plan?account=globex", {"plan": "pro"})

    await acme.ok("POST", "/_sandbox/reset")

    assert (await acme.ok("GET", "/api/v1/messages"))["messages"] == []
    assert (await globex.ok("GET", "/api/v1/me"))["plan"] == "free"


async def test_each_account_can_have_a_seed_of_its_own(make_api: ApiFactory) -> None:
    seed = {"instances": [{"id": "00000000-0000-4000-8000-00000000f001", "name": "solo"}]}
    config = {
        "accounts": [
            {"name": "acme", "api_keys": [ACME_KEY], "seed": seed},
            {"name": "globex", "api_keys": [GLOBEX_KEY]},
        ]
    }
    acme, globex = await _accounts(make_api, **config)
    assert [i["name"] for i in await acme.ok("GET", "/api/v1/instances")] == ["solo"]
    assert len(await globex.ok("GET", "/api/v1/instances")) == 5


@pytest.mark.parametrize("key", [DEFAULT_SANDBOX_API_KEY, ACME_KEY])
async def test_the_single_account_config_shares_one_account_between_its_keys(
    make_api: ApiFactory, key: str
) -> None:
    first = await make_api(api_keys=(DEFAULT_SANDBOX_API_KEY, ACME_KEY))
    sent = await first.ok("POST", SEND, _text("shared"))
    other = Api(first.client, key)
    assert (await other.ok("GET", f"/api/v1/messages/{sent['id']}"))["id"] == sent["id"]
    assert await first.ok("GET", "/_sandbox/accounts") == [
        {"name": "default", "plan": "max", "apiKeys": 2}
    ]
    assert (await first.ok("GET", "/_sandbox/usage"))["usage"]["messagesCount"] == 1
