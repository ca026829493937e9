"""The in-process limiter on virtual time: spacing, no burst, fairness, cancellation.

``FakeTime`` stands in for the monotonic clock and ``asyncio.sleep``. With ``auto`` on, a sleep
moves the clock forward by its delay at once (plus ``late[n]`` for the n-th sleep: a stalled
loop waking late); otherwise sleepers park until the test wakes them, so a test can act
(cancel) while a waiter is mid-sleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

import pytest
import structlog

from service.pacing import (
    MAX_SLOTS_PER_REQUEST,
    RATE_HEADROOM,
    LocalRateLimiter,
    LocalSlotBook,
    RedisRateLimiter,
    open_rate_limiter,
    slot_interval_us,
)

RATE = 10.0
INTERVAL = 1 / (RATE * RATE_HEADROOM)
KEY = "msgf_live_" + "ab" * 32


class FakeTime:
    def __init__(self, *, auto: bool = True) -> None:
        self.now = 5000.0
        self.auto = auto
        self.sleeps: list[float] = []
        self.late: dict[int, float] = {}  # sleep number -> how much later than asked it wakes
        self._parked: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed = asyncio.Condition()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        if self.auto:
            await asyncio.sleep(0)  # let everything already started run first, as in real time
            self.now += delay + self.late.get(len(self.sleeps) - 1, 0.0)
            return
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._parked, (self.now + delay, next(self._order), wake))
        async with self._changed:
            self._changed.notify_all()
        await wake

    async def wait_for_sleepers(self, count: int) -> None:
        async with self._changed, asyncio.timeout(5):
            await self._changed.wait_for(lambda: self._sleeping() >= count)

    def wake_next(self) -> None:
        while self._parked:
            wake_at, _, wake = heapq.heappop(self._parked)
            if not wake.done():
                self.now = max(self.now, wake_at)
                wake.set_result(None)
                return
        raise AssertionError("nobody is sleeping")

    def _sleeping(self) -> int:
        return sum(1 for _, _, wake in self._parked if not wake.done())


def limiter_on(time: FakeTime) -> LocalRateLimiter:
    return LocalRateLimiter(RATE, clock=time.clock, sleep=time.sleep)


def most_in_one_second(times: list[float]) -> int:
    """The largest number of times that fall within any half-open one-second window."""
    ordered = sorted(times)
    start = 0
    most = 0
    for end, time in enumerate(ordered):
        while time - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_an_idle_key_goes_at_once() -> None:
    time = FakeTime()

    waited = await limiter_on(time).acquire(KEY)

    assert waited == 0
    assert time.sleeps == []


async def test_back_to_back_requests_are_one_interval_apart_with_headroom() -> None:
    time = FakeTime()
    limiter = limiter_on(time)
    sent = []
    for _ in range(5):
        await limiter.acquire(KEY)
        sent.append(time.now)

    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert gaps == pytest.approx([INTERVAL] * 4, abs=1e-6)
    assert min(gaps) > 1 / RATE


async def test_under_load_no_second_holds_more_than_the_rate_yet_the_rate_is_nearly_met() -> None:
    time = FakeTime()
    limiter = limiter_on(time)
    sent: list[float] = []

    async def send() -> None:
        await limiter.acquire(KEY)
        sent.append(time.now)

    await asyncio.gather(*(send() for _ in range(100)))

    assert most_in_one_second(sent) == RATE
    assert 99 / (sent[-1] - sent[0]) >= 0.95 * RATE


async def test_concurrent_waiters_are_served_once_each_in_arrival_order() -> None:
    time = FakeTime()
    limiter = limiter_on(time)
    served: list[int] = []

    async def send(number: int) -> None:
        await limiter.acquire(KEY)
        served.append(number)

    await asyncio.gather(*(send(number) for number in range(10)))

    assert served == list(range(10))
    assert time.sleeps == pytest.approx([INTERVAL] * 9, abs=1e-6)  # one sleep each, no polling


async def test_a_waiter_woken_late_leaves_its_slot_unused_and_books_another() -> None:
    time = FakeTime()
    time.late = {3: 0.060}  # the fourth sleeper wakes 60 ms late: more than the headroom absorbs
    limiter = limiter_on(time)
    sent: list[float] = []

    async def send() -> None:
        await limiter.acquire(KEY)
        sent.append(time.now)

    with structlog.testing.capture_logs() as logs:
        await asyncio.gather(*(send() for _ in range(30)))

    # Sent at its late wake-up, the fourth request and the ten on time after it would be 11
    # in one second; it waited for the next free slot instead.
    assert most_in_one_second(sent) == RATE
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) == pytest.approx(INTERVAL, abs=1e-6)
    assert len(time.sleeps) == 29 + 1
    assert [entry["event"] for entry in logs] == ["pacing_slot_missed"]


async def test_a_loop_late_at_every_wake_up_still_sends_after_a_few_slots() -> None:
    time = FakeTime()
    time.late = dict.fromkeys(range(1000), 0.060)
    limiter = limiter_on(time)

    async with asyncio.timeout(5):  # uncapped, each request would book slots forever
        await asyncio.gather(*(limiter.acquire(KEY) for _ in range(5)))

    assert len(time.sleeps) <= 4 * MAX_SLOTS_PER_REQUEST  # the first request never sleeps


async def test_the_seconds_waited_are_reported() -> None:
    time = FakeTime()
    limiter = limiter_on(time)

    waits = await asyncio.gather(*(limiter.acquire(KEY) for _ in range(3)))

    assert waits == pytest.approx([0, INTERVAL, 2 * INTERVAL], abs=1e-6)


async def test_an_idle_key_banks_no_burst() -> None:
    time = FakeTime()
    limiter = limiter_on(time)
    await limiter.acquire(KEY)
    time.now += 60

    waits = await asyncio.gather(*(limiter.acquire(KEY) for _ in range(3)))

    assert waits == pytest.approx([0, INTERVAL, 2 * INTERVAL], abs=1e-6)


async def test_api_keys_are_paced_independently() -> None:
    time = FakeTime()
    limiter = limiter_on(time)
    await limiter.acquire("key-a")
    await limiter.acquire("key-a")

    assert await limiter.acquire("key-b") == 0


async def test_a_waiter_cancelled_mid_sleep_hands_its_slot_to_the_next() -> None:
    time = FakeTime(auto=False)
    limiter = limiter_on(time)
    start = time.now
    await limiter.acquire(KEY)
    cancelled = asyncio.create_task(limiter.acquire(KEY))
    await time.wait_for_sleepers(1)
    sent: list[float] = []

    async def send() -> None:
        await limiter.acquire(KEY)
        sent.append(time.now)

    following = [asyncio.create_task(send()) for _ in range(2)]
    cancelled.cancel()
    for _ in following:
        await time.wait_for_sleepers(1)
        time.wake_next()
    await asyncio.gather(*following)

    assert cancelled.cancelled()
    assert sent == pytest.approx([start + INTERVAL, start + 2 * INTERVAL], abs=1e-6)


async def test_a_slot_is_given_back_only_while_it_is_the_last_booked() -> None:
    time = FakeTime()
    book = LocalSlotBook(RATE, clock=time.clock)
    first = await book.reserve(KEY)
    second = await book.reserve(KEY)

    await book.give_back(KEY, first)  # someone booked after it: giving back would double-book
    third = await book.reserve(KEY)
    await book.give_back(KEY, third)
    fourth = await book.reserve(KEY)

    interval = slot_interval_us(RATE)
    assert second.at_us - first.at_us == interval
    assert third.at_us - second.at_us == interval
    assert fourth.at_us == third.at_us


def test_the_slot_interval_includes_the_headroom() -> None:
    assert slot_interval_us(10) == 104_712  # 1 s / (10 x 0.955)
    with pytest.raises(ValueError, match="rate_per_second must be positive"):
        slot_interval_us(0)


@pytest.mark.parametrize("state_url", ["sqlite:///relay-state.db", "memory://"])
async def test_a_non_redis_state_url_paces_in_process(state_url: str) -> None:
    limiter = open_rate_limiter(state_url, RATE)

    assert isinstance(limiter, LocalRateLimiter)
    await limiter.close()


async def test_a_redis_state_url_paces_through_redis() -> None:
    limiter = open_rate_limiter("redis://127.0.0.1:6379/0", RATE)

    assert isinstance(limiter, RedisRateLimiter)
    await limiter.close()
