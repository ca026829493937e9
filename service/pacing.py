"""Pacing of MsgFlash calls per API key: evenly spaced slots, in-process or shared through Redis.

MsgFlash counts requests per key on arrival, so bursts are what trip it: slots sit on a grid.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.contract.errors import StoreUnavailable
from service.secrets import fingerprint
from service.state.redis import DEFAULT_KEY_PREFIX, redis_from_state_url
from service.throttle import REDIS_RECOVERED, REDIS_SLOWED, Throttle, recovered, slowed

# Slots are scheduled a little below the allowed rate. At exactly the limit, the request after
# a full second's worth lands exactly one second after the first, so any network jitter puts
# one arrival too many in the server's sliding second; the headroom is the jitter tolerated.
# How much was needed on a loaded machine is measured in benchmarks/README.md ("pacing").
RATE_HEADROOM = 0.955
# The headroom absorbs lateness only while the requests around a late one are late too. A
# waiter woken more than this after its slot (a stalled loop or machine) does not use it: sent
# then, followed by requests on time, it would put one arrival too many in one second.
LATE_WAKE_SECONDS = 0.020
# Slots one request may book before it goes whatever its lateness (a loop that stalls every
# time must still send, and a 429 is then retried like any other).
MAX_SLOTS_PER_REQUEST = 3
# After Redis failed to book a slot, bookings fail at once for this long.
UNREACHABLE_PAUSE_SECONDS = 1.0
# A booked-slot key outlives the last slot it holds by this much, then Redis drops it.
IDLE_KEY_GRACE_MS = 1000
MICROSECONDS = 1_000_000

log = structlog.get_logger("service.pacing")

Sleep = Callable[[float], Awaitable[None]]


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> float:
        """Wait until a request with API key ``key`` may go; return the seconds waited."""

    async def slow_down(self, key: str, retry_after: float | None) -> None:
        """The provider refused a request of ``key`` as too many (``throttle.slowed``)."""

    async def recovered(self, key: str) -> None:
        """The provider accepted a request of ``key`` (``throttle.recovered``); cheap when the
        key runs at its configured rate."""

    async def close(self) -> None: ...


def slot_interval_us(rate_per_second: float) -> int:
    """Microseconds between two slots for ``rate_per_second``, headroom included."""
    if rate_per_second <= 0:
        raise ValueError("rate_per_second must be positive")
    return max(1, round(MICROSECONDS / (rate_per_second * RATE_HEADROOM)))


@dataclass(frozen=True, slots=True)
class Slot:
    """A booked slot: when it is (in its book's microsecond clock), how far away it was, and
    the next free slot its booking set (what giving it back restores from)."""

    at_us: int
    delay_seconds: float
    next_us: int


class SlotBook(Protocol):
    """Where slots are booked: the only part that differs between the two limiters.

    A strict grid (GCRA / virtual scheduling with no burst allowance): the next free slot moves
    one interval on per booking and never falls behind "now", so an idle key goes at once and
    a busy one is spaced exactly. A burst of 10 followed by one slot a little early would put
    11 requests in one sliding second.
    """

    async def reserve(self, key: str) -> Slot:
        """Book the next free slot for ``key`` atomically."""

    async def give_back(self, key: str, slot: Slot) -> None:
        """Unbook ``slot`` if it is still the last one booked for ``key``."""

    async def slow_down(self, key: str, retry_after: float | None) -> None: ...

    async def recovered(self, key: str) -> None: ...


class LocalSlotBook:
    """Slots in a dict, on the given clock; atomic because nothing in it awaits."""

    def __init__(self, rate_per_second: float, *, clock: Callable[[], float]) -> None:
        self._interval = slot_interval_us(rate_per_second)
        self._clock = clock
        self._next_free: dict[str, int] = {}
        self._throttles: dict[str, Throttle] = {}

    async def reserve(self, key: str) -> Slot:
        now = round(self._clock() * MICROSECONDS)
        throttle = self._throttles.get(key, Throttle())
        paused = round(throttle.pause_until * MICROSECONDS)
        at = max(now, self._next_free.get(key, now), paused)
        self._next_free[key] = at + round(self._interval / throttle.factor)
        return Slot(at_us=at, delay_seconds=(at - now) / MICROSECONDS, next_us=self._next_free[key])

    async def give_back(self, key: str, slot: Slot) -> None:
        if self._next_free.get(key) == slot.next_us:
            self._next_free[key] = slot.at_us

    async def slow_down(self, key: str, retry_after: float | None) -> None:
        state = self._throttles.get(key, Throttle())
        self._throttles[key] = slowed(state, now=self._clock(), retry_after=retry_after)

    async def recovered(self, key: str) -> None:
        state = self._throttles.get(key)
        if state is None:
            return
        state = recovered(state)
        if state.throttled:
            self._throttles[key] = state
        else:
            del self._throttles[key]


# KEYS[1]: next free slot (µs on the Redis server clock), KEYS[2]: the key's throttle hash.
# ARGV[1]: interval µs at the configured rate, ARGV[2]: grace ms. Returns {slot, now, next free,
# factor}. string.format keeps all 16 digits (tostring would round them).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local throttle = redis.call('HMGET', KEYS[2], 'factor', 'pause_until')
local factor = tonumber(throttle[1] or '1')
local at = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(throttle[2] or '0'))
local next_free = at + math.floor(tonumber(ARGV[1]) / factor + 0.5)
local ttl = math.ceil((next_free - now) / 1000) + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%d', next_free), 'PX', ttl)
return {at, now, string.format('%d', next_free), tostring(factor)}
"""

# A throttled key's state outlives its last change by this much, then the key is back at its
# configured rate whatever happened (a replica that died mid-storm cannot leave it slow).
THROTTLE_TTL_MS = 60_000

# KEYS[1]: next free slot. ARGV: the value our booking set, the slot to restore.
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"""


class RedisSlotBook:
    """Slots in Redis, on the Redis server's clock, so every replica books on one grid."""

    def __init__(self, redis: Redis, rate_per_second: float, *, prefix: str) -> None:
        self._redis = redis
        self._interval = slot_interval_us(rate_per_second)
        self._prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._slowed = redis.register_script(REDIS_SLOWED)
        self._recovered = redis.register_script(REDIS_RECOVERED)
        # Keys last seen throttled: only they pay a round trip for an accepted request.
        self._throttled: set[str] = set()
        self._unreachable_until = 0.0

    def redis_key(self, key: str) -> str:
        return f"{self._prefix}:pace:{fingerprint(key)}"

    def throttle_key(self, key: str) -> str:
        return f"{self._prefix}:throttle:{fingerprint(key)}"

    async def reserve(self, key: str) -> Slot:
        """Book a slot; ``StoreUnavailable`` when Redis does not answer, and at once for a
        moment after that, so the waiters queued behind one booking do not each wait out a
        socket timeout in turn."""
        if time.monotonic() < self._unreachable_until:
            raise StoreUnavailable(
                "pacing: the Redis of RELAY_STATE_URL did not answer a moment ago; check it is up"
            )
        try:
            at, now, next_free, factor = await self._reserve(
                keys=[self.redis_key(key), self.throttle_key(key)],
                args=[self._interval, IDLE_KEY_GRACE_MS],
            )
        except (RedisError, OSError) as exc:
            self._unreachable_until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS
            raise StoreUnavailable(
                f"pacing could not book a slot in Redis ({type(exc).__name__}: {exc}); check "
                "that the Redis of RELAY_STATE_URL is up and reachable"
            ) from exc
        self._note(key, factor)
        delay = (int(at) - int(now)) / MICROSECONDS
        return Slot(at_us=int(at), delay_seconds=delay, next_us=int(next_free))

    async def give_back(self, key: str, slot: Slot) -> None:
        await self._give_back(keys=[self.redis_key(key)], args=[slot.next_us, slot.at_us])

    async def slow_down(self, key: str, retry_after: float | None) -> None:
        pause_us = round((retry_after or 0.0) * MICROSECONDS)
        factor = await self._slowed(keys=[self.throttle_key(key)], args=[pause_us, THROTTLE_TTL_MS])
        self._note(key, factor)

    async def recovered(self, key: str) -> None:
        if key in self._throttled:
            self._note(key, await self._recovered(keys=[self.throttle_key(key)]))

    def _note(self, key: str, factor: bytes | str) -> None:
        if float(factor) < 1.0:
            self._throttled.add(key)
        else:
            self._throttled.discard(key)


class PacedTurns:
    """Per-key FIFO turns over a ``SlotBook``: book a slot, sleep until it, go.

    Only the waiter whose turn it is books and sleeps; the rest wait on the lock, so nobody
    polls and every waiter gets its own slot, in arrival order. A waiter cancelled while
    sleeping gives its slot back when nobody has booked after it, which locally is always
    (one booking per key at a time): no hole, and never a double booking. With Redis another
    replica may have booked the next slot meanwhile; the cancelled slot then stays unused,
    costing one interval of throughput, which is the safe side of the trade. A waiter woken
    more than LATE_WAKE_SECONDS after its slot leaves it unused the same way and books anew.
    """

    def __init__(self, book: SlotBook, *, clock: Callable[[], float], sleep: Sleep) -> None:
        self._book = book
        self._clock = clock
        self._sleep = sleep
        self._turns: dict[str, asyncio.Lock] = {}

    async def slow_down(self, key: str, retry_after: float | None) -> None:
        # Hints: an unreachable Redis leaves the pace as it was, the request's answer stands.
        with contextlib.suppress(RedisError, OSError):
            await self._book.slow_down(key, retry_after)

    async def recovered(self, key: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._book.recovered(key)

    async def acquire(self, key: str) -> float:
        started = self._clock()
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = asyncio.Lock()
        async with turn:
            for attempt in range(1, MAX_SLOTS_PER_REQUEST + 1):
                if await self._slot_kept(key, last=attempt == MAX_SLOTS_PER_REQUEST):
                    break
        return self._clock() - started

    async def _slot_kept(self, key: str, *, last: bool) -> bool:
        """Book a slot and sleep until it; False when woken too late to use it (unless it is
        the ``last`` this request may book: that one is used however late)."""
        asked = self._clock()
        slot = await self._book.reserve(key)
        # From before the booking: a loop stalled while Redis answered makes the slot late too.
        due = asked + max(slot.delay_seconds, 0.0)
        if slot.delay_seconds > 0:
            await self._sleep_until(key, slot)
        late = self._clock() - due
        if late <= LATE_WAKE_SECONDS or last:
            return True
        log.info("pacing_slot_missed", lateMs=round(late * 1000, 1))
        return False

    async def _sleep_until(self, key: str, slot: Slot) -> None:
        try:
            await self._sleep(slot.delay_seconds)
        except asyncio.CancelledError:
            await self._give_back(key, slot)
            raise

    async def _give_back(self, key: str, slot: Slot) -> None:
        # Unreachable Redis: the slot just stays unused, a hole of one interval.
        with contextlib.suppress(RedisError, OSError):
            await self._book.give_back(key, slot)


class LocalRateLimiter:
    """Paces one process: enough for a single replica (or SQLite/memory state)."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        book = LocalSlotBook(rate_per_second, clock=clock)
        self._turns = PacedTurns(book, clock=clock, sleep=sleep)

    async def acquire(self, key: str) -> float:
        return await self._turns.acquire(key)

    async def slow_down(self, key: str, retry_after: float | None) -> None:
        await self._turns.slow_down(key, retry_after)

    async def recovered(self, key: str) -> None:
        await self._turns.recovered(key)

    async def close(self) -> None:
        """Nothing to release."""


class RedisRateLimiter:
    """Paces every replica that uses the same Redis and prefix, as one.

    The limiter owns ``redis``: ``close()`` closes it and its connection pool.
    """

    def __init__(
        self,
        redis: Redis,
        rate_per_second: float,
        *,
        prefix: str,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        book = RedisSlotBook(redis, rate_per_second, prefix=prefix)
        self._turns = PacedTurns(book, clock=clock, sleep=sleep)

    async def acquire(self, key: str) -> float:
        return await self._turns.acquire(key)

    async def slow_down(self, key: str, retry_after: float | None) -> None:
        await self._turns.slow_down(key, retry_after)

    async def recovered(self, key: str) -> None:
        await self._turns.recovered(key)

    async def close(self) -> None:
        await self._redis.aclose()


def open_rate_limiter(
    state_url: str, rate_per_second: float, *, key_prefix: str = DEFAULT_KEY_PREFIX
) -> RateLimiter:
    """Redis-backed when RELAY_STATE_URL is ``redis://`` (replicas share the limit), else local.

    A ``?prefix=`` in the URL wins over ``key_prefix``, as for the state store.
    """
    if state_url.startswith(("redis://", "rediss://")):
        client, url_prefix = redis_from_state_url(state_url)
        return RedisRateLimiter(client, rate_per_second, prefix=url_prefix or key_prefix)
    return LocalRateLimiter(rate_per_second)
