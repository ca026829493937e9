"""Replicas pacing API keys through a real Redis: one grid of slots per key, never too many,
and one adaptive pace per key (a 429 through one replica slows all, and all recover together).

Each "replica" is a limiter on its own Redis connection; all share a per-test key prefix whose
keys are deleted afterwards. Rates are high and runs short (50/s, 100 slots: about 2 s). The
last test runs two relay processes against a sandbox process that limits each key on its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from service.bus.topology import delete_topology
from service.contract.amqp import Topology
from service.pacing import (
    RATE_HEADROOM,
    RedisRateLimiter,
    RedisSlotBook,
    slot_interval_us,
)
from service.secrets import fingerprint
from service.settings import DEFAULT_SANDBOX_API_KEY
from service.throttle import FLOOR, MAX_PAUSE_SECONDS
from tests.conftest import REDIS_URL, EventTap, Producer, text_command
from tests.integration.conftest import RelayProcess, sandbox_in_process_of_its_own
from tests.unit.test_pacing import most_in_one_second

RATE = 50.0
SLOTS = 100
REPLICAS = 3
KEY = "msgf_live_" + "cd" * 32
# The grid itself is exact (see the slot-book test), so double booking is caught there. The
# sends it paces are judged by what wake-up jitter cannot fake: the typical gap is the slot
# spacing, and no sliding second holds more than the rate. (A single gap is not: a busy machine
# wakes one sleeper ten and more ms later than the next.)
SPACING_SLACK = 0.1


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """This test's own key prefix; its keys are deleted afterwards (never a flush)."""
    name = f"test-pace-{uuid.uuid4().hex}"
    yield name
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def connections() -> AsyncIterator[list[Redis]]:
    """One Redis connection per replica."""
    clients = [Redis.from_url(REDIS_URL) for _ in range(REPLICAS)]
    yield clients
    for client in clients:
        await client.aclose()


async def test_replicas_book_distinct_slots_on_one_evenly_spaced_grid(
    connections: list[Redis], prefix: str
) -> None:
    books = [RedisSlotBook(client, RATE, prefix=prefix) for client in connections]

    slots = await asyncio.gather(*(books[i % REPLICAS].reserve(KEY) for i in range(SLOTS)))

    times = sorted(slot.at_us for slot in slots)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= slot_interval_us(RATE)


async def send_through(replicas: list[RedisRateLimiter], slots: int, workers: int) -> list[float]:
    """When each of ``slots`` requests was let through, ``workers`` spread over the replicas."""
    remaining = itertools.count()
    sent: list[float] = []

    async def worker(limiter: RedisRateLimiter) -> None:
        while next(remaining) < slots:
            await limiter.acquire(KEY)
            sent.append(time.monotonic())

    async with asyncio.timeout(30):
        await asyncio.gather(*(worker(replicas[i % len(replicas)]) for i in range(workers)))
    return sent


async def test_three_replicas_together_send_evenly_and_never_over_the_rate(
    connections: list[Redis], prefix: str
) -> None:
    replicas = [RedisRateLimiter(client, RATE, prefix=prefix) for client in connections]

    sent = await send_through(replicas, SLOTS, workers=4 * REPLICAS)

    gaps = [later - earlier for earlier, later in itertools.pairwise(sorted(sent))]
    assert len(sent) == SLOTS
    spacing = 1 / (RATE * RATE_HEADROOM)
    assert abs(statistics.median(gaps) - spacing) <= SPACING_SLACK * spacing
    assert most_in_one_second(sent) <= RATE


async def test_a_replica_woken_late_books_a_fresh_slot_instead_of_bunching_with_the_rest(
    connections: list[Redis], prefix: str
) -> None:
    # At MsgFlash's own 10/s a stall shorter than one slot (104.7 ms) but longer than the
    # headroom absorbs (~47 ms) is the dangerous one: the late request and the ten on time
    # after it would be 11 arrivals in one second.
    rate, slots = 10.0, 25
    sleeps = itertools.count()

    async def stalls_once(delay: float) -> None:
        await asyncio.sleep(delay + (0.080 if next(sleeps) == 2 else 0.0))

    replicas = [
        RedisRateLimiter(
            client, rate, prefix=prefix, sleep=stalls_once if i == 0 else asyncio.sleep
        )
        for i, client in enumerate(connections)
    ]

    sent = await send_through(replicas, slots, workers=2 * REPLICAS)

    assert len(sent) == slots
    assert most_in_one_second(sent) <= rate


async def test_the_redis_key_names_a_fingerprint_not_the_api_key_and_expires(
    connections: list[Redis], prefix: str
) -> None:
    limiter = RedisRateLimiter(connections[0], RATE, prefix=prefix)
    await limiter.acquire(KEY)

    # One KEYS call, not a SCAN walking a shared Redis (which may hold many other keys) for
    # longer than the key lives.
    keys = await connections[1].keys(f"{prefix}:*")
    assert keys == [f"{prefix}:pace:{fingerprint(KEY)}".encode()]
    ttl = await connections[1].pttl(keys[0])
    assert ttl == -2 or 0 < ttl <= 2000  # -2: expired already (a stalled test), -1 never would


async def test_a_replica_waiter_cancelled_mid_sleep_gives_its_slot_back(
    connections: list[Redis], prefix: str
) -> None:
    sleeping, armed = asyncio.Event(), False

    async def sleep_until_cancelled(delay: float) -> None:
        """The waiter's sleep never ends; the first caller's sleeps normally (on a stalled
        machine its slot can be missed, and it then waits for the next one)."""
        if not armed:
            await asyncio.sleep(delay)
            return
        sleeping.set()
        await asyncio.Event().wait()

    slow = 1.0  # slots a second apart: the waiter surely books before the next one is due
    limiter = RedisRateLimiter(connections[0], slow, prefix=prefix, sleep=sleep_until_cancelled)
    book = RedisSlotBook(connections[1], slow, prefix=prefix)
    async with asyncio.timeout(10):
        await limiter.acquire(KEY)
    armed = True
    first_free = int(await connections[1].get(book.redis_key(KEY)))
    waiter = asyncio.create_task(limiter.acquire(KEY))
    async with asyncio.timeout(5):
        await sleeping.wait()

    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert int(await connections[1].get(book.redis_key(KEY))) == first_free
    assert (await book.reserve(KEY)).at_us == first_free


# --- adaptive pacing shared through Redis ------------------------------------------------------
SLOW = 1.0  # slots a second apart: two bookings back to back never meet "now" in between


async def spacing(book: RedisSlotBook) -> int:
    """Microseconds between two slots booked back to back."""
    first = await book.reserve(KEY)
    second = await book.reserve(KEY)
    return second.at_us - first.at_us


async def test_a_429_through_one_replica_slows_the_other_down_once_a_second(
    connections: list[Redis], prefix: str
) -> None:
    told, other = (RedisSlotBook(client, SLOW, prefix=prefix) for client in connections[:2])
    interval = slot_interval_us(SLOW)
    assert await spacing(other) == interval

    await told.slow_down(KEY, None)
    await other.slow_down(KEY, None)  # the same excess, answered within the second

    assert await spacing(other) == 2 * interval
    assert await spacing(told) == 2 * interval


async def test_a_retry_after_through_one_replica_holds_the_other_s_slots(
    connections: list[Redis], prefix: str
) -> None:
    told, other = (RedisSlotBook(client, SLOW, prefix=prefix) for client in connections[:2])

    await told.slow_down(KEY, 3.0)

    held = await other.reserve(KEY)
    assert 2.0 < held.delay_seconds <= 3.0


async def test_accepted_requests_through_one_replica_bring_both_back_to_the_configured_rate(
    connections: list[Redis], prefix: str
) -> None:
    told, other = (RedisSlotBook(client, SLOW, prefix=prefix) for client in connections[:2])
    interval = slot_interval_us(SLOW)
    await told.slow_down(KEY, None)
    assert await spacing(other) == 2 * interval  # and so it knows the key is throttled

    for _ in range(9):
        await other.recovered(KEY)
    assert interval < await spacing(told) < 2 * interval
    await other.recovered(KEY)

    assert await spacing(told) == interval
    assert not await connections[2].exists(told.throttle_key(KEY))


async def test_in_redis_a_storm_stops_at_the_floor_and_a_retry_after_at_its_cap(
    connections: list[Redis], prefix: str
) -> None:
    told, other = (RedisSlotBook(client, SLOW, prefix=prefix) for client in connections[:2])
    # Already at the floor after a long storm (the last decrease long ago).
    state = {"factor": str(FLOOR), "decreased_at": "0", "pause_until": "0"}
    await connections[2].hset(told.throttle_key(KEY), mapping=state)

    await told.slow_down(KEY, 86_400.0)

    held = await other.reserve(KEY)
    assert MAX_PAUSE_SECONDS - 1 < held.delay_seconds <= MAX_PAUSE_SECONDS
    after = await other.reserve(KEY)
    assert after.at_us - held.at_us == round(slot_interval_us(SLOW) / FLOOR)


# --- two relay processes, two accounts, each key limited on its own -----------------------------
ACCOUNT_KEYS = {"north": "msgf_live_" + "4e" * 32, "south": "msgf_live_" + "5a" * 32}
PER_ACCOUNT = 20  # about two seconds of each key's pace
LIMIT = 10


@pytest.fixture
async def keyed_sandbox(tmp_path: Path) -> AsyncIterator[Any]:
    """A sandbox process that knows both accounts' keys and limits each to 10 requests in any
    sliding second, as MsgFlash does at its strictest."""
    config = {
        "api_keys": [DEFAULT_SANDBOX_API_KEY, *ACCOUNT_KEYS.values()],
        "rate_limit_per_second": LIMIT,
        "rate_limit_window": "sliding",
        "lifecycle_step_seconds": 0.05,
    }
    async with sandbox_in_process_of_its_own(tmp_path, config) as sandbox:
        yield sandbox


@pytest.fixture
async def account_queues(amqp: AbstractConnection, declared: Topology) -> AsyncIterator[None]:
    """The accounts' own queues the relays declare (per-account lanes), deleted afterwards."""
    yield
    lanes = replace(declared, accounts=("default", *ACCOUNT_KEYS))
    await delete_topology(amqp, lanes)


@pytest.mark.usefixtures("account_queues")
async def test_two_relays_pace_each_account_on_its_own_key_and_never_over_its_rate(
    relay_processes: Any,
    keyed_sandbox: Any,
    events: EventTap,
    producer: Producer,
    prefix: str,
    tmp_path: Path,
) -> None:
    accounts_file = tmp_path / "accounts.yaml"
    accounts_file.write_text(
        json.dumps(
            {
                "accounts": [
                    {"name": name, "provider": "msgflash", "apiKeyEnv": f"KEY_{name.upper()}"}
                    for name in ACCOUNT_KEYS
                ]
            }
        )
    )
    relays: list[RelayProcess] = [
        relay_processes(
            msgflash_base_url=keyed_sandbox.url,
            relay_state_url=f"{REDIS_URL}?prefix={prefix}",
            relay_accounts_file=accounts_file,
            msgflash_rate_limit=LIMIT,
            relay_prefetch=8,
            **{f"key_{name}": key for name, key in ACCOUNT_KEYS.items()},
        )
        for _ in range(2)
    ]
    await asyncio.gather(*(relay.start() for relay in relays))
    commands = [
        {**text_command(f"{name} {i}"), "account": name}
        for i in range(PER_ACCOUNT)
        for name in ACCOUNT_KEYS
    ]

    for body in commands:
        await producer.publish(body)
    await events.wait_for(
        lambda e: e["type"] == "msgflash.message.sent", count=len(commands), timeout=60
    )

    records = await keyed_sandbox.requests("/api/v1/messages/send", method="POST")
    assert not [r for r in records if r["code"] == "API_RATE_LIMIT_EXCEEDED"]
    by_key = {name: sorted(r["at"] for r in records if r["key"] == key[-6:])
              for name, key in ACCOUNT_KEYS.items()}  # fmt: skip
    assert {name: len(times) for name, times in by_key.items()} == dict.fromkeys(
        ACCOUNT_KEYS, PER_ACCOUNT
    )
    assert all(most_in_one_second(times) <= LIMIT for times in by_key.values()), by_key
    # One shared budget would never let more than LIMIT through in a second, both keys together.
    together = sorted(at for times in by_key.values() for at in times)
    assert most_in_one_second(together) > LIMIT
    handled = [await _commands_by_account(relay) for relay in relays]
    assert all(handled), handled  # both replicas took part
    assert sum(handled, Counter()) == Counter(dict.fromkeys(ACCOUNT_KEYS, PER_ACCOUNT))


async def _commands_by_account(relay: RelayProcess) -> Counter[str]:
    """``relay_commands_total`` of one relay, summed per ``account`` label."""
    url = f"http://127.0.0.1:{relay.admin_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    counted: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("relay_commands_total{"):
            labels, _, value = line.rpartition(" ")
            account = labels.split('account="', 1)[1].split('"', 1)[0]
            counted[account] += int(float(value))
    return counted
