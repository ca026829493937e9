"""Fault injection: storms strike before processing, lost and late answers after it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.providers.tether.sandbox.conftest import CAMPAIGN, Api


async def test_a_503_storm_strikes_before_any_processing(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/faults", {"error_rate": 1.0, "error_statuses": [503]})
    status, body = await api.call("POST", "/api/campaigns", CAMPAIGN)
    assert status == 503 and body["error"]["code"] == "service_unavailable"
    await api.ok("DELETE", "/_sandbox/faults")
    assert (await api.ok("GET", "/api/campaigns"))["data"] == []
    logged = (await api.log("/api/campaigns"))[0]
    assert (logged["status"], logged["fault"]) == (503, "error")


async def test_counted_faults_strike_the_next_n_matching_requests(api: Api) -> None:
    await api.ok(
        "PUT", "/_sandbox/faults", {"force_429_count": 1, "methods": ["POST"], "paths": ["/api/c"]}
    )
    assert (await api.call("GET", "/api/campaigns"))[0] == 200
    assert (await api.call("POST", "/api/campaigns", CAMPAIGN))[0] == 429
    assert (await api.call("POST", "/api/campaigns", CAMPAIGN))[0] == 200


async def test_pass_count_lets_the_first_matching_requests_through_before_a_fault(
    api: Api,
) -> None:
    await api.ok(
        "PUT",
        "/_sandbox/faults",
        {"pass_count": 2, "error_count": 1, "methods": ["POST"], "paths": ["/api/campaigns"]},
    )
    assert (await api.call("GET", "/api/campaigns"))[0] == 200  # not matched: not counted
    statuses = [(await api.call("POST", "/api/campaigns", CAMPAIGN))[0] for _ in range(4)]
    assert statuses == [200, 200, 503, 200]
    assert len((await api.ok("GET", "/api/campaigns"))["data"]) == 3


async def test_a_lost_answer_still_creates_the_campaign(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/faults", {"drop_after_count": 1, "methods": ["POST"]})
    with pytest.raises(aiohttp.ClientError):
        await api.call("POST", "/api/campaigns", CAMPAIGN)
    assert len((await api.ok("GET", "/api/campaigns"))["data"]) == 1


async def test_a_late_answer_is_processed_before_the_client_gives_up(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/faults", {"late_answer_seconds": 30, "late_answer_count": 1})
    call = asyncio.create_task(api.call("POST", "/api/campaigns", CAMPAIGN))
    for _ in range(500):  # bounded wait for the campaign, while the answer is held
        if (await api.ok("GET", "/_sandbox/campaigns"))["data"]:
            break
        await asyncio.sleep(0.01)
    call.cancel()
    [logged] = await api.log("/api/campaigns")
    assert (logged["fault"], logged["status"]) == ("late_answer", None)


async def test_faults_can_be_read_and_reset(api: Api) -> None:
    shown = (await api.ok("PUT", "/_sandbox/faults", {"error_count": 2}))["data"]
    assert shown["active"] and shown["left"]["error"] == 2
    status, _ = await api.call("PUT", "/_sandbox/faults", {"unknown": 1})
    assert status == 400
    await api.ok("POST", "/_sandbox/reset")
    assert not (await api.ok("GET", "/_sandbox/faults"))["data"]["active"]
