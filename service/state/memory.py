"""In-process state store (``memory://``): the rules of ``records`` over plain dicts.

Each method reads and writes without an ``await`` in between, so it is atomic on the event
loop. Records expire on the store's clock and are dropped as later writes come in.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from service.contract.events import Correlation
from service.state.records import (
    Entry,
    Held,
    decide_called,
    decide_claim,
    decide_complete,
    decide_renewal,
)
from service.state.store import Claim, RememberedMessage

V = TypeVar("V")


class _ExpiringTable(Generic[V]):
    """A dict whose entries vanish at their own expiry time, purged oldest first on writes.

    The heap may hold stale entries for keys rewritten since; they are skipped when popped,
    so its size stays bounded by the writes made within the longest expiry.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[V, float]] = {}
        self._expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def put(self, key: str, value: V, *, expires_at: float, now: float) -> None:
        self._purge(now)
        self._entries[key] = (value, expires_at)
        heapq.heappush(self._expiry, (expires_at, key))

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, key = heapq.heappop(self._expiry)
            entry = self._entries.get(key)
            if entry is not None and entry[1] <= now:
                del self._entries[key]


class MemoryStateStore:
    """Everything in dicts: for tests and single-process runs that need no persistence."""

    def __init__(self, *, retention_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._retention = retention_seconds
        self._clock = clock
        self._claims: _ExpiringTable[Held] = _ExpiringTable()
        self._correlations: _ExpiringTable[Correlation] = _ExpiringTable()
        self._messages_by_request: _ExpiringTable[str] = _ExpiringTable()
        self._seen: _ExpiringTable[bool] = _ExpiringTable()

    def record_count(self) -> int:
        """How many live-or-not-yet-purged records are held (bounded by the retention)."""
        tables = (self._claims, self._correlations, self._messages_by_request, self._seen)
        return sum(len(table) for table in tables)

    async def claim(
        self, key: str, owner: str, lease_seconds: float, *, uncalled: str | None = None
    ) -> Claim:
        now = self._clock()
        claim, entry = decide_claim(
            self._claims.get(key, now),
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            retention_seconds=self._retention,
            uncalled=uncalled,
        )
        self._store(key, entry, now)
        return claim

    async def complete(
        self, key: str, owner: str, result: bytes, *, message: RememberedMessage | None = None
    ) -> None:
        now = self._clock()
        if message is not None:
            self._remember(key, message, now)
        entry = decide_complete(
            self._claims.get(key, now),
            owner=owner,
            now=now,
            result=result,
            retention_seconds=self._retention,
        )
        self._store(key, entry, now)

    async def release(self, key: str, owner: str) -> None:
        held = self._claims.get(key, self._clock())
        if held is not None and held.result is None and held.owner == owner:
            self._claims.discard(key)

    async def mark_called(self, key: str, owner: str) -> bool:
        now = self._clock()
        held, entry = decide_called(
            self._claims.get(key, now), owner=owner, now=now, retention_seconds=self._retention
        )
        self._store(key, entry, now)
        return held

    async def renew(self, held: Mapping[str, str], lease_seconds: float) -> None:
        now = self._clock()
        for key, owner in held.items():
            entry = decide_renewal(
                self._claims.get(key, now),
                owner=owner,
                now=now,
                lease_seconds=lease_seconds,
                retention_seconds=self._retention,
            )
            self._store(key, entry, now)

    async def forget(self, key: str) -> None:
        """Drop the claim or result and the request -> message record of ``key``."""
        self._claims.discard(key)
        self._messages_by_request.discard(key)

    async def correlation_for(self, message_id: str) -> Correlation | None:
        return self._correlations.get(message_id, self._clock())

    async def message_for_request(self, request_key: str) -> str | None:
        return self._messages_by_request.get(request_key, self._clock())

    async def first_seen(self, key: str, window_seconds: float) -> bool:
        now = self._clock()
        if self._seen.get(key, now) is not None:
            return False
        self._seen.put(key, True, expires_at=now + window_seconds, now=now)
        return True

    async def forget_seen(self, key: str) -> None:
        self._seen.discard(key)

    async def open(self) -> None:
        """Nothing to open."""

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Nothing to release."""

    def _store(self, key: str, entry: Entry | None, now: float) -> None:
        if entry is not None:
            self._claims.put(key, entry.held, expires_at=entry.expires_at, now=now)

    def _remember(self, key: str, message: RememberedMessage, now: float) -> None:
        expires_at = now + self._retention
        correlation, message_id = message.correlation, message.message_id
        self._correlations.put(message_id, correlation, expires_at=expires_at, now=now)
        self._messages_by_request.put(key, message_id, expires_at=expires_at, now=now)
