"""Fault injection (``/_sandbox/faults``): each kind, its scope and its lifetime."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from tests.providers.msgflash.sandbox.conftest import Api, ApiFactory, eventually

SEND = "/api/v1/messages/send"
TEXT = {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "type": "text", "text": "Hi"}


async def _faults(api: Api, **settings: Any) -> dict[str, Any]:
    shown: dict[str, Any] = await api.ok("PUT", "/_sandbox/faults", settings)
    return shown


async def _nothing_was_sent(api: Api) -> None:
    await api.ok("DELETE", "/_sandbox/faults")
    assert (await api.ok("GET", "/api/v1/messages"))["messages"] == []


async def test_latency_delays_the_answer(api: Api) -> None:
    await _faults(api, latency_ms=150)
    started = time.monotonic()
    status, _ = await api.get("/api/v1/instances")
    assert status == 200 and time.monotonic() - started >= 0.15
    [logged] = await api.ok("GET", "/_sandbox/requests")
    assert logged["fault"] == "latency"


async def test_an_injected_error_strikes_before_processing(api: Api) -> None:
    await _faults(api, error_rate=1.0, error_statuses=[503])
    status, body = await api.post(SEND, TEXT)
    assert (status, body["error"]["code"]) == (503, "PROVIDER_UNAVAILABLE")
    await _nothing_was_sent(api)
    assert (await api.ok("GET", "/_sandbox/usage"))["usage"]["apiRequestsCount"] == 1


async def test_forced_429s_answer_the_next_n_requests(api: Api) -> None:
    shown = await _faults(api, force_429_count=2, force_429_code="MONTHLY_OUTBOUND_QUOTA_EXCEEDED")
    assert shown["force_429_left"] == 2
    answers = [await api.post(SEND, TEXT) for _ in range(3)]
    assert [status for status, _ in answers] == [429, 429, 201]
    assert answers[0][1]["error"]["code"] == "MONTHLY_OUTBOUND_QUOTA_EXCEEDED"


async def test_a_forced_429_rate_answers_rate_limited(api: Api) -> None:
    await _faults(api, force_429_rate=1.0)
    status, body = await api.get("/api/v1/instances")
    assert status == 429 and body["error"]["message"] == "Too many API requests"


async def test_a_dropped_request_is_never_processed(api: Api) -> None:
    await _faults(api, drop_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(SEND, TEXT)
    [logged] = await api.ok("GET", "/_sandbox/requests?path=/api/v1/messages/send")
    assert (logged["status"], logged["fault"]) == (None, "drop")
    await _nothing_was_sent(api)


async def test_drop_after_processes_then_loses_the_answer(api: Api) -> None:
    await _faults(api, drop_after_rate=1.0, paths=[SEND])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(SEND, TEXT)
    [logged] = await api.ok("GET", f"/_sandbox/requests?path={SEND}")
    assert (logged["status"], logged["fault"]) == (201, "drop_after")
    assert len((await api.ok("GET", "/api/v1/messages"))["messages"]) == 1


async def test_a_hang_holds_the_request_then_drops_it(api: Api) -> None:
    await _faults(api, hang_rate=1.0, hang_seconds=0.2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(SEND, TEXT)
    await _nothing_was_sent(api)


async def test_a_client_timeout_during_a_long_hang_does_not_hold_the_sandbox(api: Api) -> None:
    await _faults(api, hang_rate=1.0, hang_seconds=300)
    with pytest.raises(TimeoutError):
        await api.client.get(
            "/api/v1/instances",
            headers={"x-api-key": api.key},
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    # The app's shutdown releases the hanging handler (teardown would take 300 s otherwise).


async def test_faults_switch_off_after_their_duration(api: Api) -> None:
    await _faults(api, error_rate=1.0, duration_seconds=0.2)
    assert (await api.get("/api/v1/instances"))[0] >= 500
    await eventually(lambda: api.get("/api/v1/instances"), lambda answer: answer[0] == 200)
    assert (await api.ok("GET", "/_sandbox/faults"))["active"] is False


async def test_faults_only_hit_their_paths_and_never_admin_routes(api: Api) -> None:
    await _faults(api, error_rate=1.0, paths=["/api/v1/messages", "/_sandbox", "/"])
    assert (await api.post(SEND, TEXT))[0] >= 500
    assert (await api.get("/api/v1/templates"))[0] >= 500  # "/" matches every api path
    await _faults(api, error_rate=1.0, paths=["/api/v1/messages"])
    assert (await api.get("/api/v1/instances"))[0] == 200
    assert (await api.client.get("/_sandbox/faults")).status == 200


async def test_faults_are_cleared_by_delete(api: Api) -> None:
    await _faults(api, error_rate=1.0)
    cleared = await api.ok("DELETE", "/_sandbox/faults")
    assert cleared["active"] is False and cleared["error_rate"] == 0
    assert (await api.get("/api/v1/instances"))[0] == 200


@pytest.mark.parametrize(
    "settings", [{"error_rate": 2}, {"error_statuses": [200]}, {"eror_rate": 1}]
)
async def test_fault_settings_are_validated(api: Api, settings: dict[str, Any]) -> None:
    status, body = await api.put("/_sandbox/faults", settings)
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"


async def test_faults_can_be_active_from_the_start(make_api: ApiFactory) -> None:
    api = await make_api(faults={"error_rate": 1.0, "error_statuses": [502]})
    status, body = await api.get("/api/v1/instances")
    assert (status, body["error"]["code"]) == (502, "PROVIDER_ERROR")
