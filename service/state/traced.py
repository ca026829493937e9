"""A state store whose every operation is a span; wraps whichever backend ``RELAY_STATE_URL``
named, so the backends stay free of tracing and an untraced relay keeps the bare store."""

from __future__ import annotations

from collections.abc import Mapping

from service.contract.events import Correlation
from service.state.redis import RedisStateStore
from service.state.sqlite import SqliteStateStore
from service.state.store import Claim, RememberedMessage, StateStore
from service.tracing.spans import Tracing


def traced_store(store: StateStore, tracing: Tracing) -> StateStore:
    """``store`` itself when tracing is off: not even a wrapper's call is paid then."""
    return TracedStore(store, tracing) if tracing.enabled else store


def db_system(store: StateStore) -> str | None:
    """The database conventions' ``db.system.name`` of a backend (none for the in-memory one)."""
    if isinstance(store, RedisStateStore):
        return "redis"
    if isinstance(store, SqliteStateStore):
        return "sqlite"
    return None


class TracedStore:
    """``StateStore`` with a span around each operation a command or a webhook makes."""

    def __init__(self, store: StateStore, tracing: Tracing) -> None:
        self._store = store
        self._tracing = tracing
        self._system = db_system(store)

    async def claim(
        self, key: str, owner: str, lease_seconds: float, *, uncalled: str | None = None
    ) -> Claim:
        with self._tracing.store("claim", self._system):
            return await self._store.claim(key, owner, lease_seconds, uncalled=uncalled)

    async def complete(
        self, key: str, owner: str, result: bytes, *, message: RememberedMessage | None = None
    ) -> None:
        with self._tracing.store("complete", self._system):
            await self._store.complete(key, owner, result, message=message)

    async def release(self, key: str, owner: str) -> None:
        with self._tracing.store("release", self._system):
            await self._store.release(key, owner)

    async def mark_called(self, key: str, owner: str) -> bool:
        with self._tracing.store("mark_called", self._system):
            return await self._store.mark_called(key, owner)

    async def renew(self, held: Mapping[str, str], lease_seconds: float) -> None:
        # The lease heartbeat's, not a command's: no span, as for the lifecycle below.
        await self._store.renew(held, lease_seconds)

    async def forget(self, key: str) -> None:
        with self._tracing.store("forget", self._system):
            await self._store.forget(key)

    async def correlation_for(self, message_id: str) -> Correlation | None:
        with self._tracing.store("correlation_for", self._system):
            return await self._store.correlation_for(message_id)

    async def message_for_request(self, request_key: str) -> str | None:
        with self._tracing.store("message_for_request", self._system):
            return await self._store.message_for_request(request_key)

    async def first_seen(self, key: str, window_seconds: float) -> bool:
        with self._tracing.store("first_seen", self._system):
            return await self._store.first_seen(key, window_seconds)

    async def forget_seen(self, key: str) -> None:
        with self._tracing.store("forget_seen", self._system):
            await self._store.forget_seen(key)

    # Lifecycle and readiness belong to the relay, not to a command: no spans.
    async def open(self) -> None:
        await self._store.open()

    async def ping(self) -> None:
        await self._store.ping()

    async def close(self) -> None:
        await self._store.close()
