"""The StateStore contract, run unchanged against memory, SQLite and a real Redis.

Time is a fake clock shared by test and store, so leases, retention and dedupe windows expire
exactly when a test says so. Redis keys live under a per-test prefix and are deleted after.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

import service.state.sqlite as sqlite_backend
from consumers.leases import RENEWALS_PER_LEASE
from service.contract.errors import ConfigError
from service.contract.events import Correlation
from service.settings import Settings
from service.state.factory import open_state_store
from service.state.store import Claim, ClaimStatus, RememberedMessage, StateStore
from tests.clock import FakeClock
from tests.conftest import REDIS_URL

RETENTION = 3600.0
LEASE = 10.0
BACKENDS = ["memory", "sqlite", "redis"]


OpenStore = Callable[[], Awaitable[StateStore]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards (no flush)."""
    prefix = f"test-state-{uuid.uuid4().hex}"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    backend = getattr(request, "param", "memory")
    if backend == "redis":
        return f"{REDIS_URL}?prefix={request.getfixturevalue('redis_prefix')}"
    return {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'state.db'}"}[backend]


@pytest.fixture
async def open_store(state_url: str, clock: FakeClock) -> AsyncIterator[OpenStore]:
    """Opens stores on this test's backend (several share one file or prefix); closes them all."""
    opened: list[StateStore] = []

    async def open_one() -> StateStore:
        store = await open_state_store(state_url, retention_seconds=RETENTION, clock=clock)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> StateStore:
    return await open_store()


every_backend = pytest.mark.parametrize("state_url", BACKENDS, indirect=True)
shared_backends = pytest.mark.parametrize("state_url", ["sqlite", "redis"], indirect=True)


# --- claims -------------------------------------------------------------------------------


@every_backend
async def test_the_first_claim_of_a_key_is_claimed(store: StateStore) -> None:
    assert await store.claim("k", "a", LEASE) == Claim(ClaimStatus.CLAIMED)


@every_backend
async def test_a_live_claim_of_another_owner_is_busy(store: StateStore, clock: FakeClock) -> None:
    await store.claim("k", "a", LEASE)
    clock.advance(LEASE - 1)

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.BUSY)


@every_backend
async def test_reclaiming_ones_own_claim_is_claimed_and_renews_the_lease(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    clock.advance(LEASE - 1)
    assert await store.claim("k", "a", LEASE) == Claim(ClaimStatus.CLAIMED)
    clock.advance(LEASE - 1)  # past the first lease, within the renewed one

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.BUSY)


@every_backend
async def test_a_holder_that_died_after_calling_is_taken_over_and_reports_its_first_call(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    clock.advance(1)
    called_at = clock.now
    assert await store.mark_called("k", "a")
    clock.advance(LEASE + 1)

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.EXPIRED, claimed_at=called_at)
    assert await store.claim("k", "a", LEASE) == Claim(ClaimStatus.BUSY)
    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.CLAIMED)


@every_backend
async def test_a_holder_that_died_before_calling_leaves_the_key_to_be_claimed_afresh(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    clock.advance(LEASE + 1)

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.CLAIMED)
    assert not await store.mark_called("k", "a"), "the dead holder must not call any more"
    assert await store.mark_called("k", "b")


@every_backend
async def test_a_holder_named_uncalled_is_replaced_afresh_though_its_call_mark_was_written(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    assert await store.mark_called("k", "a")  # written, but "a" never heard so and sent nothing
    assert await store.claim("k", "b", LEASE, uncalled="a") == Claim(ClaimStatus.BUSY)
    clock.advance(LEASE + 1)

    assert await store.claim("k", "b", LEASE, uncalled="a") == Claim(ClaimStatus.CLAIMED)
    clock.advance(LEASE + 1)  # "b" died too, before calling: its successor has nothing to find
    assert await store.claim("k", "c", LEASE) == Claim(ClaimStatus.CLAIMED)


@every_backend
async def test_a_second_takeover_still_reports_the_first_call(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    first_call = clock.now
    await store.mark_called("k", "a")
    clock.advance(LEASE + 1)
    await store.claim("k", "b", LEASE)
    await store.mark_called("k", "b")  # the resend keeps the first call's time
    clock.advance(LEASE + 1)

    claim = await store.claim("k", "c", LEASE)

    assert claim == Claim(ClaimStatus.EXPIRED, claimed_at=first_call)


@every_backend
async def test_a_heartbeat_keeps_a_live_holders_long_call_from_being_taken(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    await store.mark_called("k", "a")
    await store.claim("other", "x", LEASE)
    for _ in range(5):  # a call five leases long, renewed every half lease
        clock.advance(LEASE / 2)
        await store.renew({"k": "a", "other": "not-x"}, LEASE)

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.BUSY)
    # The heartbeat renews only the owner's own claims.
    assert (await store.claim("other", "y", LEASE)).status is ClaimStatus.CLAIMED


# The relay's own lease and heartbeat period.
DEFAULT_LEASE = Settings.model_fields["relay_lease_seconds"].default
HEARTBEAT = DEFAULT_LEASE / RENEWALS_PER_LEASE


@every_backend
async def test_a_holder_that_stops_heartbeating_is_taken_over_a_lease_later_and_not_before(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("dead", "a", DEFAULT_LEASE)
    await store.claim("live", "b", DEFAULT_LEASE)
    called_at = clock.now
    assert await store.mark_called("dead", "a")
    for _ in range(12):  # both in a call four leases long, renewed by their heartbeats
        clock.advance(HEARTBEAT)
        await store.renew({"dead": "a"}, DEFAULT_LEASE)
        await store.renew({"live": "b"}, DEFAULT_LEASE)

    # "a" dies right after its last heartbeat; "b" keeps beating.
    for _ in range(RENEWALS_PER_LEASE - 1):
        clock.advance(HEARTBEAT)
        await store.renew({"live": "b"}, DEFAULT_LEASE)
    clock.advance(HEARTBEAT - 0.5)
    assert await store.claim("dead", "c", DEFAULT_LEASE) == Claim(ClaimStatus.BUSY)
    clock.advance(0.5)
    await store.renew({"live": "b"}, DEFAULT_LEASE)
    clock.advance(0.5)  # a lease and half a second after the dead holder's last heartbeat

    taken_over = Claim(ClaimStatus.EXPIRED, claimed_at=called_at)
    assert await store.claim("dead", "c", DEFAULT_LEASE) == taken_over
    assert await store.claim("live", "c", DEFAULT_LEASE) == Claim(ClaimStatus.BUSY)


@every_backend
async def test_a_heartbeat_neither_revives_a_finished_key_nor_creates_one(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    await store.complete("k", "a", b"done")
    await store.renew({"k": "a", "never-claimed": "a"}, LEASE)

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.DONE, result=b"done")
    assert await store.claim("never-claimed", "b", LEASE) == Claim(ClaimStatus.CLAIMED)


@every_backend
async def test_concurrent_claims_of_one_key_have_exactly_one_winner(store: StateStore) -> None:
    claims = await asyncio.gather(*(store.claim("k", f"owner-{i}", LEASE) for i in range(20)))

    statuses = sorted(claim.status.value for claim in claims)
    assert statuses == ["busy"] * 19 + ["claimed"]


@shared_backends
async def test_concurrent_claims_through_two_connections_have_exactly_one_winner(
    open_store: OpenStore,
) -> None:
    first, second = await open_store(), await open_store()

    claims = await asyncio.gather(
        *((first if i % 2 else second).claim(f"k{i // 10}", f"owner-{i}", LEASE) for i in range(40))
    )

    winners = [claim for claim in claims if claim.status is ClaimStatus.CLAIMED]
    assert len(winners) == 4  # one per key
    assert all(claim.status in (ClaimStatus.CLAIMED, ClaimStatus.BUSY) for claim in claims)


# --- completion, release, forget -------------------------------------------------------


@every_backend
async def test_a_done_key_returns_its_result_to_every_later_claim(store: StateStore) -> None:
    await store.claim("k", "a", LEASE)
    await store.complete("k", "a", b'{"messageId": "m1"}')

    assert await store.claim("k", "b", LEASE) == Claim(
        ClaimStatus.DONE, result=b'{"messageId": "m1"}'
    )
    assert await store.claim("k", "a", LEASE) == Claim(
        ClaimStatus.DONE, result=b'{"messageId": "m1"}'
    )


@every_backend
async def test_a_done_key_keeps_its_first_result(store: StateStore, clock: FakeClock) -> None:
    await store.claim("k", "a", LEASE)
    clock.advance(LEASE + 1)
    await store.claim("k", "b", LEASE)
    await store.complete("k", "b", b"second holder")
    await store.complete("k", "a", b"first holder, late")

    assert await store.claim("k", "c", LEASE) == Claim(ClaimStatus.DONE, result=b"second holder")


@every_backend
async def test_results_are_stored_byte_for_byte(store: StateStore) -> None:
    await store.complete("binary", "a", bytes(range(256)))
    await store.complete("empty", "a", b"")

    assert (await store.claim("binary", "b", LEASE)).result == bytes(range(256))
    assert await store.claim("empty", "b", LEASE) == Claim(ClaimStatus.DONE, result=b"")


@every_backend
async def test_a_result_is_kept_for_the_retention_period_then_the_key_is_new(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    await store.complete("k", "a", b"r")
    clock.advance(RETENTION - 1)
    assert (await store.claim("k", "b", LEASE)).status is ClaimStatus.DONE
    clock.advance(2)

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.CLAIMED)


@every_backend
async def test_an_abandoned_claim_is_forgotten_after_the_retention_period(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    clock.advance(RETENTION + 1)

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.CLAIMED)


@every_backend
async def test_release_lets_a_later_delivery_claim_the_key(store: StateStore) -> None:
    await store.claim("k", "a", LEASE)
    await store.release("k", "a")

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.CLAIMED)


@every_backend
async def test_release_by_an_owner_who_lost_the_claim_changes_nothing(
    store: StateStore, clock: FakeClock
) -> None:
    await store.claim("k", "a", LEASE)
    clock.advance(LEASE + 1)
    await store.claim("k", "b", LEASE)
    await store.release("k", "a")

    assert await store.claim("k", "c", LEASE) == Claim(ClaimStatus.BUSY)


@every_backend
async def test_release_never_undoes_a_completion(store: StateStore) -> None:
    await store.claim("k", "a", LEASE)
    await store.complete("k", "a", b"r")
    await store.release("k", "a")

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.DONE, result=b"r")


@every_backend
async def test_forget_drops_the_result_and_the_request_record_but_not_the_correlation(
    store: StateStore,
) -> None:
    correlation = Correlation(request_id="r1", request_source="tests")
    await store.claim("k", "a", LEASE)
    await store.complete("k", "a", b"r", message=RememberedMessage("m1", correlation))

    await store.forget("k")

    assert await store.claim("k", "b", LEASE) == Claim(ClaimStatus.CLAIMED)
    assert await store.message_for_request("k") is None
    assert await store.correlation_for("m1") == correlation


# --- correlation ---------------------------------------------------------------------------


@every_backend
async def test_a_remembered_message_is_found_by_message_id_and_by_request(
    store: StateStore,
) -> None:
    correlation = Correlation(request_id="r1", request_source="billing")
    await store.complete("billing/r1", "a", b"r", message=RememberedMessage("m1", correlation))

    assert await store.correlation_for("m1") == correlation
    assert await store.message_for_request("billing/r1") == "m1"
    assert await store.correlation_for("m2") is None
    assert await store.message_for_request("billing/r2") is None


@every_backend
async def test_a_correlation_keeps_the_commands_traceparent_for_webhooks_to_link_to(
    store: StateStore,
) -> None:
    traced = Correlation("r1", "billing", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    await store.complete("billing/r1", "a", b"r", message=RememberedMessage("m1", traced))
    untraced = Correlation("r2", "billing")
    await store.complete("billing/r2", "a", b"r", message=RememberedMessage("m2", untraced))

    assert await store.correlation_for("m1") == traced
    assert await store.correlation_for("m2") == untraced


@every_backend
async def test_correlations_are_forgotten_after_the_retention_period(
    store: StateStore, clock: FakeClock
) -> None:
    correlation = Correlation(request_id="r1", request_source="billing")
    await store.complete("billing/r1", "a", b"r", message=RememberedMessage("m1", correlation))
    clock.advance(RETENTION + 1)

    assert await store.correlation_for("m1") is None
    assert await store.message_for_request("billing/r1") is None


@every_backend
async def test_a_late_completion_keeps_the_first_result_but_records_its_message(
    store: StateStore,
) -> None:
    correlation = Correlation(request_id="r1", request_source="billing")
    await store.complete("billing/r1", "a", b"first")
    await store.complete("billing/r1", "b", b"late", message=RememberedMessage("m2", correlation))

    assert await store.claim("billing/r1", "c", LEASE) == Claim(ClaimStatus.DONE, result=b"first")
    assert await store.correlation_for("m2") == correlation
    assert await store.message_for_request("billing/r1") == "m2"


# --- webhook dedupe ------------------------------------------------------------------------


@every_backend
async def test_first_seen_is_true_once_per_window(store: StateStore, clock: FakeClock) -> None:
    assert await store.first_seen("delivery-1", 60) is True
    assert await store.first_seen("delivery-1", 60) is False
    assert await store.first_seen("delivery-2", 60) is True
    clock.advance(61)

    assert await store.first_seen("delivery-1", 60) is True


@every_backend
async def test_concurrent_first_sightings_let_exactly_one_through(store: StateStore) -> None:
    sightings = await asyncio.gather(*(store.first_seen("delivery", 60) for _ in range(20)))

    assert sorted(sightings) == [False] * 19 + [True]


@every_backend
async def test_forget_seen_lets_the_next_delivery_through(store: StateStore) -> None:
    await store.first_seen("delivery-1", 60)
    await store.forget_seen("delivery-1")

    assert await store.first_seen("delivery-1", 60) is True


@every_backend
async def test_a_zero_window_dedupes_nothing(store: StateStore) -> None:
    assert await store.first_seen("delivery-1", 0) is True
    assert await store.first_seen("delivery-1", 0) is True


@every_backend
async def test_a_reachable_backend_answers_ping(store: StateStore) -> None:
    await store.ping()


# --- SQLite: persistence and bounded growth -------------------------------------------------


def _row_counts(path: Path) -> dict[str, int]:
    """Counted through a connection of its own: what any other reader of the file sees."""
    with closing(sqlite3.connect(path)) as db:
        tables = ("claims", "correlations", "requests", "seen")
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


async def test_sqlite_state_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    correlation = Correlation(request_id="r1", request_source="billing")
    before = await open_state_store(url, retention_seconds=RETENTION, clock=clock)
    await before.claim("done", "a", LEASE)
    await before.complete("done", "a", b"r")
    await before.claim("held", "a", LEASE)
    await before.complete("billing/r1", "a", b"r", message=RememberedMessage("m1", correlation))
    await before.first_seen("delivery-1", 60)
    await before.close()

    after = await open_state_store(url, retention_seconds=RETENTION, clock=clock)
    try:
        assert await after.claim("done", "b", LEASE) == Claim(ClaimStatus.DONE, result=b"r")
        assert await after.claim("held", "b", LEASE) == Claim(ClaimStatus.BUSY)
        assert await after.correlation_for("m1") == correlation
        assert await after.message_for_request("billing/r1") == "m1"
        assert await after.first_seen("delivery-1", 60) is False
    finally:
        await after.close()


async def test_sqlite_runs_in_wal_mode(tmp_path: Path, clock: FakeClock) -> None:
    store = await open_state_store(
        f"sqlite:///{tmp_path / 'state.db'}", retention_seconds=RETENTION, clock=clock
    )
    await store.close()

    with closing(sqlite3.connect(tmp_path / "state.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_purges_expired_rows_as_writes_come_in(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "PURGE_EVERY_WRITES", 10)
    path = tmp_path / "state.db"
    store = await open_state_store(f"sqlite:///{path}", retention_seconds=RETENTION, clock=clock)
    try:
        for i in range(5):
            await store.complete(f"old-{i}", "a", b"r")
            await store.first_seen(f"old-{i}", 60)
        clock.advance(RETENTION + 1)
        for i in range(5):  # the tenth write since the purge on open triggers the next one
            await store.complete(f"new-{i}", "a", b"r")
            await store.first_seen(f"new-{i}", 60)

        assert _row_counts(path) == {"claims": 5, "correlations": 0, "requests": 0, "seen": 5}
    finally:
        await store.close()


async def test_sqlite_purges_expired_rows_when_opened(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state.db"
    url = f"sqlite:///{path}"
    store = await open_state_store(url, retention_seconds=RETENTION, clock=clock)
    correlation = Correlation(request_id="r1", request_source="billing")
    await store.complete("billing/r1", "a", b"r", message=RememberedMessage("m1", correlation))
    await store.first_seen("delivery-1", 60)
    await store.close()
    clock.advance(RETENTION + 1)

    store = await open_state_store(url, retention_seconds=RETENTION, clock=clock)
    await store.close()

    assert _row_counts(path) == {"claims": 0, "correlations": 0, "requests": 0, "seen": 0}


async def test_sqlite_refuses_a_file_of_another_schema_version(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "state.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version=99")

    with pytest.raises(ConfigError, match="RELAY_STATE_URL") as raised:
        await open_state_store(f"sqlite:///{path}", retention_seconds=RETENTION, clock=clock)
    assert "schema version 99" in raised.value.message


# --- Redis: key hygiene and readiness -------------------------------------------------------


@pytest.mark.parametrize("state_url", ["redis"], indirect=True)
async def test_every_redis_key_is_under_the_prefix_and_expires(
    store: StateStore, redis_prefix: str
) -> None:
    await store.claim("held", "a", LEASE)
    correlation = Correlation(request_id="r1", request_source="billing")
    await store.complete("done", "a", b"r", message=RememberedMessage("m1", correlation))
    await store.first_seen("delivery-1", 60)

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}:*")]
        ttls = [await client.pttl(key) for key in keys]
    finally:
        await client.aclose()
    assert len(keys) == 5
    assert all(0 < ttl <= RETENTION * 1000 for ttl in ttls)


async def test_ping_of_an_unreachable_redis_raises(clock: FakeClock) -> None:
    store = await open_state_store(
        "redis://127.0.0.1:1/0", retention_seconds=RETENTION, clock=clock
    )
    try:
        with pytest.raises(RedisError):
            await store.ping()
    finally:
        await store.close()
