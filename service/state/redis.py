"""Shared state store (``redis://``): every replica sees the same claims, correlations, dedupe.

Read-decide-write operations are Lua scripts: one atomic round trip each.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.contract.errors import ConfigError, StoreUnavailable
from service.contract.events import Correlation
from service.state.store import Claim, ClaimStatus, RememberedMessage

DEFAULT_KEY_PREFIX = "msgflash-relay"
# Bounds on every Redis round trip (style: every network await has a timeout).
SOCKET_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5.0

# KEYS[1] claim hash. ARGV: owner, now, lease_until, expires_at, ttl_ms, uncalled ('' if none).
_CLAIM = """
local owner, now = ARGV[1], tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'owner', 'claimed_at', 'lease_until', 'expires_at',
                        'result', 'called_at')
local function hold(claimed_at)
  redis.call('HSET', KEYS[1], 'owner', owner, 'claimed_at', claimed_at,
             'lease_until', ARGV[3], 'expires_at', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
if not held[4] or tonumber(held[4]) <= now then
  redis.call('DEL', KEYS[1])
  hold(ARGV[2])
  return {'claimed'}
end
if held[5] then return {'done', held[5]} end
if held[1] == owner then hold(held[2]) return {'claimed'} end
if tonumber(held[3]) > now then return {'busy'} end
if not held[6] or held[1] == ARGV[6] then
  redis.call('DEL', KEYS[1])
  hold(ARGV[2])
  return {'claimed'}
end
hold(held[2])
return {'expired', held[6]}
"""

# KEYS[1] claim hash. ARGV: owner, now, expires_at, ttl_ms. The first call's time is kept.
_MARK_CALLED = """
local held = redis.call('HMGET', KEYS[1], 'owner', 'result', 'expires_at', 'called_at')
if held[1] ~= ARGV[1] or held[2] or not held[3] or tonumber(held[3]) <= tonumber(ARGV[2]) then
  return 0
end
if not held[4] then
  redis.call('HSET', KEYS[1], 'called_at', ARGV[2], 'expires_at', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
"""

# KEYS[1] claim hash. ARGV: owner, now, lease_until.
_RENEW = """
local held = redis.call('HMGET', KEYS[1], 'owner', 'result', 'expires_at')
if held[1] ~= ARGV[1] or held[2] or not held[3] or tonumber(held[3]) <= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[3])
return 1
"""

# KEYS[1] claim hash, then optionally KEYS[2] correlation hash and KEYS[3] request record.
# ARGV: owner, now, result, expires_at, ttl_ms, then with them message_id, request_id,
# request_source, traceparent ('' when none). The message is recorded even for a key already
# done; a live done record keeps its first result: redeliveries must republish one stable outcome.
_COMPLETE = """
if KEYS[2] then
  redis.call('HSET', KEYS[2], 'request_id', ARGV[7], 'request_source', ARGV[8],
             'traceparent', ARGV[9], 'expires_at', ARGV[4])
  redis.call('HSET', KEYS[3], 'message_id', ARGV[6], 'expires_at', ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
local held = redis.call('HMGET', KEYS[1], 'expires_at', 'result')
local live = held[1] and tonumber(held[1]) > tonumber(ARGV[2])
if live and held[2] then return 0 end
if not live then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'claimed_at', ARGV[2])
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease_until', ARGV[2], 'result', ARGV[3],
           'expires_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS[1] claim hash. ARGV: owner.
_RELEASE = """
local held = redis.call('HMGET', KEYS[1], 'owner', 'result')
if held[1] == ARGV[1] and not held[2] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] seen marker holding its expiry time. ARGV: now, expires_at, ttl_ms.
_FIRST_SEEN = """
local seen_until = redis.call('GET', KEYS[1])
if seen_until and tonumber(seen_until) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_STATUS = {status.value.encode(): status for status in ClaimStatus}


def redis_from_state_url(url: str) -> tuple[Redis, str | None]:
    """A client for a ``redis://`` RELAY_STATE_URL, and the key prefix its ``?prefix=`` names.

    ``prefix`` is the relay's own parameter, removed before redis-py sees the URL. The client
    connects lazily; every round trip is bounded by socket timeouts. redis-py's own retries
    are off: a script whose reply was lost has run, and running it again answers differently
    (a first sighting becomes "seen", a claim of a lost message "taken"); the pipeline defers
    instead, and the next try asks afresh.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    if any(not value for value in prefixes):
        raise ConfigError("RELAY_STATE_URL: ?prefix= must not be empty (or leave it out)")
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    try:
        client = Redis.from_url(
            urlunsplit(parts._replace(query=rest)),
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), retries=0),
        )
    except ValueError as exc:
        raise ConfigError(
            f"RELAY_STATE_URL: not a usable Redis URL ({exc}); "
            "use redis://HOST:PORT/DB, optionally with ?prefix=NAME"
        ) from None
    return client, (prefixes[-1] if prefixes else None)


class RedisStateStore:
    """State in Redis under ``<prefix>:claim:*``, ``:msg:*``, ``:req:*`` and ``:seen:*`` keys.

    Time comes from the store's clock, as in the other backends: records carry their expiry
    time and are judged by it; key TTLs of the same length only collect what is left behind.
    The store owns its client: ``close()`` closes it and its connection pool.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_KEY_PREFIX,
        retention_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._retention = retention_seconds
        self._retention_ms = _milliseconds(retention_seconds)
        self._clock = clock
        self._claim = redis.register_script(_CLAIM)
        self._complete = redis.register_script(_COMPLETE)
        self._release = redis.register_script(_RELEASE)
        self._mark_called = redis.register_script(_MARK_CALLED)
        self._renew = redis.register_script(_RENEW)
        self._first_seen = redis.register_script(_FIRST_SEEN)

    async def claim(
        self, key: str, owner: str, lease_seconds: float, *, uncalled: str | None = None
    ) -> Claim:
        now = self._clock()
        args: list[str | int] = [
            owner,
            repr(now),
            repr(now + lease_seconds),
            self._expiry(now),
            self._retention_ms,
            uncalled or "",
        ]
        with _answered():
            reply = await self._claim(keys=[self._key("claim", key)], args=args)
        status = _STATUS[reply[0]]
        if status is ClaimStatus.DONE:
            return Claim(status, result=bytes(reply[1]))
        if status is ClaimStatus.EXPIRED:
            return Claim(status, claimed_at=float(reply[1]))
        return Claim(status)

    async def complete(
        self, key: str, owner: str, result: bytes, *, message: RememberedMessage | None = None
    ) -> None:
        now = self._clock()
        keys = [self._key("claim", key)]
        args: list[str | bytes | int] = [
            owner,
            repr(now),
            result,
            self._expiry(now),
            self._retention_ms,
        ]
        if message is not None:
            keys += [self._key("msg", message.message_id), self._key("req", key)]
            correlation = message.correlation
            args += [message.message_id, correlation.request_id, correlation.request_source]
            args.append(correlation.traceparent or "")
        with _answered():
            await self._complete(keys=keys, args=args)

    async def release(self, key: str, owner: str) -> None:
        with _answered():
            await self._release(keys=[self._key("claim", key)], args=[owner])

    async def mark_called(self, key: str, owner: str) -> bool:
        now = self._clock()
        args: list[str | int] = [owner, repr(now), self._expiry(now), self._retention_ms]
        with _answered():
            return bool(await self._mark_called(keys=[self._key("claim", key)], args=args))

    async def renew(self, held: Mapping[str, str], lease_seconds: float) -> None:
        """One pipelined round trip for every held key."""
        if not held:
            return
        now = self._clock()
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, owner in held.items():
                args = [owner, repr(now), repr(now + lease_seconds)]
                await self._renew(keys=[self._key("claim", key)], args=args, client=pipe)
            await pipe.execute()

    async def forget(self, key: str) -> None:
        """Drop the claim or result and the request -> message record of ``key``."""
        with _answered():
            await self._redis.delete(self._key("claim", key), self._key("req", key))

    async def correlation_for(self, message_id: str) -> Correlation | None:
        fields = ["request_id", "request_source", "expires_at", "traceparent"]
        with _answered():
            request_id, source, expires_at, traceparent = await self._redis.hmget(
                self._key("msg", message_id), fields
            )
        if request_id is None or source is None or not self._live(expires_at):
            return None
        return Correlation(
            request_id=_text(request_id),
            request_source=_text(source),
            traceparent=_text(traceparent) if traceparent else None,
        )

    async def message_for_request(self, request_key: str) -> str | None:
        fields = ["message_id", "expires_at"]
        with _answered():
            message_id, expires_at = await self._redis.hmget(self._key("req", request_key), fields)
        if message_id is None or not self._live(expires_at):
            return None
        return _text(message_id)

    async def first_seen(self, key: str, window_seconds: float) -> bool:
        now = self._clock()
        args: list[str | int] = [
            repr(now),
            repr(now + window_seconds),
            _milliseconds(window_seconds),
        ]
        with _answered():
            return bool(await self._first_seen(keys=[self._key("seen", key)], args=args))

    async def forget_seen(self, key: str) -> None:
        with _answered():
            await self._redis.delete(self._key("seen", key))

    async def open(self) -> None:
        """Nothing to open: the client connects on first use (readiness pings)."""

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}:{kind}:{name}"

    def _expiry(self, now: float) -> str:
        return repr(now + self._retention)

    def _live(self, expires_at: bytes | str | None) -> bool:
        return expires_at is not None and float(expires_at) > self._clock()


@contextlib.contextmanager
def _answered() -> Iterator[None]:
    """Redis gone or silent becomes ``StoreUnavailable``: the pipeline waits, never guesses."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StoreUnavailable(
            f"Redis did not answer ({type(exc).__name__}: {exc}); check that the Redis of "
            "RELAY_STATE_URL is up and reachable"
        ) from exc


def _milliseconds(seconds: float) -> int:
    """A positive key TTL: Redis refuses a zero or negative PEXPIRE."""
    return max(1, math.ceil(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
