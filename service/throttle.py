"""Adaptive pacing per API key: slow down when the provider says "too many requests", and come
back to the configured rate once it accepts again.

Additive increase, multiplicative decrease (as TCP does): each rate-limit 429 halves the key's
rate, at most once per DECREASE_EVERY_SECONDS (the 429s of requests already in flight answer the
same excess and must not halve it again); each accepted request adds back a step of the
configured rate. A ``Retry-After`` holds every slot of the key until it has passed. The rules
are pure; ``pacing`` applies them to its slot books, in process or inside Redis scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DECREASE = 0.5
# The slowest the relay goes, as a share of the configured rate: a storm that never ends still
# lets a request through now and then to find out that it has.
FLOOR = 1 / 32
# Share of the configured rate an accepted request adds back.
STEP = 0.05
DECREASE_EVERY_SECONDS = 1.0
# Bound on a Retry-After honoured (a garbled header must not stop a key for hours).
MAX_PAUSE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Throttle:
    """A key's pacing state: its share of the configured rate, and when slots may start again."""

    factor: float = 1.0
    decreased_at: float = float("-inf")
    pause_until: float = 0.0

    @property
    def throttled(self) -> bool:
        return self.factor < 1.0


def slowed(state: Throttle, *, now: float, retry_after: float | None) -> Throttle:
    """After a rate-limit 429 at ``now``."""
    if now - state.decreased_at >= DECREASE_EVERY_SECONDS:
        state = replace(state, factor=max(FLOOR, state.factor * DECREASE), decreased_at=now)
    if retry_after is not None and retry_after > 0:
        until = now + min(retry_after, MAX_PAUSE_SECONDS)
        state = replace(state, pause_until=max(state.pause_until, until))
    return state


def recovered(state: Throttle) -> Throttle:
    """After an accepted request."""
    return replace(state, factor=min(1.0, state.factor + STEP))


# The same rules inside Redis, on the server's clock in microseconds, so every replica paces one
# key by one shared state. Hash fields: factor, decreased_at, pause_until.
# KEYS[1] throttle hash. ARGV: retry_after_us (0 = none), ttl_ms.
REDIS_SLOWED = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'factor', 'decreased_at', 'pause_until')
local factor = tonumber(s[1] or '1')
local decreased_at = tonumber(s[2] or '0')
local pause_until = tonumber(s[3] or '0')
if s[2] == false or now - decreased_at >= {round(DECREASE_EVERY_SECONDS * 1e6)} then
  factor = math.max({FLOOR!r}, factor * {DECREASE!r})
  decreased_at = now
end
local wait = math.min(tonumber(ARGV[1]), {round(MAX_PAUSE_SECONDS * 1e6)})
if wait > 0 then pause_until = math.max(pause_until, now + wait) end
redis.call('HSET', KEYS[1], 'factor', tostring(factor),
           'decreased_at', string.format('%d', decreased_at),
           'pause_until', string.format('%d', pause_until))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tostring(factor)
"""

# KEYS[1] throttle hash. Back to the configured rate: the state is dropped.
REDIS_RECOVERED = f"""
local factor = tonumber(redis.call('HGET', KEYS[1], 'factor') or '1')
factor = math.min(1, factor + {STEP!r})
if factor >= 1 then redis.call('DEL', KEYS[1]) else
  redis.call('HSET', KEYS[1], 'factor', tostring(factor)) end
return tostring(factor)
"""
