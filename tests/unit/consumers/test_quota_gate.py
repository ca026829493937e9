"""The quota gate closes on a monthly-quota error, probes once per period, reopens on success."""

from __future__ import annotations

from service.contract.errors import MsgFlashError
from service.metrics import Metrics
from service.providers.msgflash.quota import QuotaGate
from tests.clock import FakeClock


async def test_closes_once_probes_on_schedule_and_reopens() -> None:
    clock, announced = FakeClock(0.0), []

    async def announce(error: MsgFlashError) -> None:
        announced.append(error.code)

    gate = QuotaGate(
        key_fingerprint="k",
        account="default",
        probe_seconds=10,
        metrics=Metrics(),
        on_closed=announce,
        clock=clock,
    )
    assert gate.allows_call()
    quota = MsgFlashError("MONTHLY_OUTBOUND_QUOTA_EXCEEDED", "quota", http_status=429)
    await gate.observe(quota)
    await gate.observe(quota)
    assert announced == ["MONTHLY_OUTBOUND_QUOTA_EXCEEDED"]
    assert not gate.allows_call()
    clock.now = 10
    assert gate.allows_call()  # the probe
    assert not gate.allows_call()  # only one per period
    gate.record_success()
    assert gate.allows_call() and not gate.closed
    assert gate.error_info().retryable


async def test_other_errors_leave_it_open() -> None:
    gate = QuotaGate(key_fingerprint="k", account="default", probe_seconds=10, metrics=Metrics())
    await gate.observe(MsgFlashError("API_RATE_LIMIT_EXCEEDED", "slow down", http_status=429))
    assert gate.allows_call() and not gate.closed
