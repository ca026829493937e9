"""The in-process store stays bounded: expired records go as later writes come in."""

from __future__ import annotations

from service.contract.events import Correlation
from service.state.memory import MemoryStateStore
from service.state.store import RememberedMessage
from tests.clock import FakeClock


async def test_expired_records_are_dropped_by_later_writes() -> None:
    clock = FakeClock()
    store = MemoryStateStore(retention_seconds=60, clock=clock)
    for i in range(100):
        await store.claim(f"claim-{i}", "a", 10)
        correlation = Correlation(request_id=f"r{i}", request_source="s")
        await store.complete(
            f"done-{i}", "a", b"r", message=RememberedMessage(f"m{i}", correlation)
        )
        await store.first_seen(f"seen-{i}", 30)
    assert store.record_count() == 500
    clock.now += 61

    correlation = Correlation(request_id="r", request_source="s")
    await store.complete("fresh", "a", b"r", message=RememberedMessage("fresh", correlation))
    await store.first_seen("fresh", 30)

    assert store.record_count() == 4


async def test_rewriting_a_key_keeps_it_until_its_latest_expiry() -> None:
    clock = FakeClock()
    store = MemoryStateStore(retention_seconds=60, clock=clock)
    await store.claim("k", "a", 10)
    clock.now += 50
    await store.claim("k", "a", 10)  # renewal: retention counts from here
    clock.now += 20
    await store.first_seen("other", 30)  # a write that purges what has expired

    assert store.record_count() == 2
