"""The claims this replica holds, kept alive while it works on them, and the record made just
before a provider call.

Together they let a successor tell a dead holder from a slow one, and one that never called
the provider from one that may have: a live holder's lease is renewed by a heartbeat, so only
a dead one's runs out (in about a lease, not after the longest call); and the claim is marked
"called" right before the request leaves, so a command whose holder died while it waited for
pacing is simply sent, and only one that may exist at the provider is looked up first.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from consumers.outcomes import Calling
from service.contract.errors import CallNotMarked, ClaimLost, StoreUnavailable
from service.state.store import StateStore

log = structlog.get_logger("consumers.leases")

# Renewals per lease: two can be lost (a slow store) before a live holder's lease runs out.
RENEWALS_PER_LEASE = 3


class Leases:
    """Held claims (key -> owner), renewed every ``lease_seconds / RENEWALS_PER_LEASE``."""

    def __init__(self, store: StateStore, lease_seconds: float) -> None:
        self._store = store
        self._lease = lease_seconds
        self._held: dict[str, str] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        return len(self._held)

    def hold(self, key: str, owner: str) -> None:
        self._held[key] = owner
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew_forever(), name="lease-heartbeat")

    def let_go(self, key: str, owner: str) -> None:
        if self._held.get(key) == owner:
            del self._held[key]

    def calling(self, key: str, owner: str) -> Calling:
        """The hook a handler's provider call awaits before each request: marks the claim
        called once (the first call's time is what a successor looks back to)."""
        marked = False

        async def mark() -> None:
            nonlocal marked
            if marked:
                return
            try:
                called = await self._store.mark_called(key, owner)
            except StoreUnavailable as exc:
                raise CallNotMarked(exc.args[0] if exc.args else str(exc)) from exc
            if not called:
                raise ClaimLost(
                    "another holder took this command over while this replica was presumed "
                    "dead; it was not sent from here (raise RELAY_LEASE_SECONDS if this "
                    "replica is just slow to reach the state store)"
                )
            marked = True

        return mark

    async def renew_now(self) -> None:
        """One heartbeat; a failure is logged and the next one tries again."""
        if not self._held:
            return
        try:
            await self._store.renew(dict(self._held), self._lease)
        except Exception as exc:  # a store hiccup must not stop the heartbeat
            log.warning("lease_renewal_failed", held=len(self._held), error=type(exc).__name__)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease / RENEWALS_PER_LEASE)
            await self.renew_now()
