"""Rate limit and quotas (§3), plans (§13): what gets a 429, and what counts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.providers.msgflash.sandbox.limits import RateLimiter
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.settings import DEFAULT_SANDBOX_API_KEY
from tests.clock import FakeClock
from tests.providers.msgflash.sandbox.conftest import Api, ApiFactory

SEND = "/api/v1/messages/send"
TEXT = {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "type": "text", "text": "Hi"}
OTHER_KEY = "msgf_live_" + "ab" * 32



async def _burst(api: Api, count: int) -> list[tuple[int, Any]]:
    return list(await asyncio.gather(*(api.get("/api/v1/instances") for _ in range(count))))


async def test_eleven_requests_in_a_second_meet_the_rate_limit(make_api: ApiFactory) -> None:
    api = await make_api(rate_limit_per_second=10.0)
    answers = await _burst(api, 11)
    refused = [body for status, body in answers if status == 429]
    assert refused
    assert refused[0] == {
        "error": {"code": "API_RATE_LIMIT_EXCEEDED", "message": "Too many API requests"}
    }


async def test_no_rate_limit_when_it_is_switched_off(make_api: ApiFactory) -> None:
    api = await make_api(rate_limit_per_second=None)
    assert all(status == 200 for status, _ in await _burst(api, 40))


async def test_rate_limited_requests_do_not_count_toward_the_api_quota(
    make_api: ApiFactory,
) -> None:
    api = await make_api(rate_limit_per_second=10.0)
    answers = await _burst(api, 15)
    accepted = sum(1 for status, _ in answers if status == 200)
    usage = await api.ok("GET", "/_sandbox/usage")
    assert usage["usage"]["apiRequestsCount"] == accepted < 15


def test_the_sliding_window_admits_again_one_second_after_each_admission() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, "sliding", clock)
    assert [limiter.admit("k"), limiter.admit("k"), limiter.admit("k")] == [True, True, False]
    clock.now += 0.99
    assert limiter.admit("k") is False
    clock.now += 0.02
    assert limiter.admit("k") is True


def test_the_fixed_window_resets_on_each_whole_second() -> None:
    clock = FakeClock(1000.7)
    limiter = RateLimiter(2, "fixed", clock)
    assert [limiter.admit("k"), limiter.admit("k"), limiter.admit("k")] == [True, True, False]
    clock.now = 1001.0
    assert limiter.admit("k") is True


def test_each_api_key_has_its_own_budget() -> None:
    limiter = RateLimiter(1, "sliding", FakeClock())
    assert [limiter.admit("a"), limiter.admit("b"), limiter.admit("a")] == [True, True, False]


async def test_the_monthly_api_request_quota_answers_429_until_usage_is_reset(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/limits", {"monthlyApiRequestQuota": 2})
    assert [status for status, _ in [await api.get("/api/v1/instances") for _ in range(2)]] == [
        200,
        200,
    ]
    status, body = await api.get("/api/v1/instances")
    assert (status, body["error"]["code"]) == (429, "MONTHLY_API_REQUEST_QUOTA_EXCEEDED")
    await api.ok("PUT", "/_sandbox/usage", {})
    assert (await api.get("/api/v1/instances"))[0] == 200


@pytest.mark.parametrize(
    ("path", "extra"),
    [(SEND, {}), ("/api/v1/messages/schedule", {"scheduledAt": "2030-01-01T00:00:00Z"})],
)
async def test_the_monthly_outbound_quota_answers_429_on_sends(
    api: Api, path: str, extra: dict[str, Any]
) -> None:
    await api.ok("PUT", "/_sandbox/limits", {"monthlyOutboundQuota": 1})
    assert (await api.post(path, {**TEXT, **extra}))[0] == 201
    status, body = await api.post(path, {**TEXT, **extra})
    assert (status, body["error"]["code"]) == (429, "MONTHLY_OUTBOUND_QUOTA_EXCEEDED")
    usage = await api.ok("GET", "/_sandbox/usage")
    assert usage["usage"]["messagesCount"] == 1
    await api.ok("PUT", "/_sandbox/usage", {"messagesCount": 0})
    assert (await api.post(path, {**TEXT, **extra}))[0] == 201


async def test_the_free_plan_has_its_documented_limits(make_api: ApiFactory) -> None:
    api = await make_api(plan="free")
    usage = await api.ok("GET", "/api/v1/billing/usage")
    assert usage["plan"]["code"] == "free"
    assert (usage["limits"]["monthlyOutboundQuota"], usage["limits"]["monthlyApiRequestQuota"]) == (
        500,
        500,
    )
    assert usage["usage"]["apiRequestsCount"] == 1
    assert set(usage) == {"plan", "limits", "features", "usage", "period"}
    assert usage["period"]["end"].endswith("T23:59:59.999Z")


async def test_the_plan_can_be_switched_at_run_time(api: Api) -> None:
    report = await api.ok("PUT", "/_sandbox/plan", {"plan": "unlimited"})
    assert report["limits"]["monthlyOutboundQuota"] is None
    status, body = await api.put("/_sandbox/plan", {"plan": "gold"})
    assert status == 400 and body["error"]["details"][0]["field"] == "plan"


async def test_the_plan_catalog_lists_every_plan(api: Api) -> None:
    plans = await api.ok("GET", "/api/v1/billing/plans")
    assert [plan["code"] for plan in plans] == [
        "free",
        "max",
        "plus",
        "pro",
        "starter",
        "unlimited",
    ]
    assert set(plans[0]) == {"code", "name", "priceEur", "limits", "features"}


async def test_a_second_key_is_limited_separately_over_http(make_api: ApiFactory) -> None:
    api = await make_api(rate_limit_per_second=5.0, api_keys=(DEFAULT_SANDBOX_API_KEY, OTHER_KEY))
    first = await _burst(api, 5)
    api.key = OTHER_KEY
    second = await _burst(api, 5)
    assert all(status == 200 for status, _ in first + second)
