"""The state store interface: idempotency claims, message correlation and webhook dedupe.

One small Protocol, three backends selected by ``RELAY_STATE_URL``: ``sqlite:///PATH``
(embedded default), ``redis://...`` (shared by replicas) and ``memory://`` (tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from service.contract.events import Correlation


class ClaimStatus(Enum):
    CLAIMED = "claimed"  # first time seen: the caller owns it and may call MsgFlash
    DONE = "done"  # finished before: ``result`` holds what to republish, do not call again
    BUSY = "busy"  # another live holder owns it: requeue with a delay, do not process
    # A holder died after it started calling the provider; the caller now owns the key and must
    # find out what that call did. (A holder that died before calling leaves a CLAIMED key.)
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    result: bytes | None = None  # the stored result (opaque JSON bytes) when DONE
    # When EXPIRED: epoch seconds of the dead holder's first provider call (look back to it).
    claimed_at: float | None = None


@dataclass(frozen=True, slots=True)
class RememberedMessage:
    """The MsgFlash message a completed command created; the command's key is the request."""

    message_id: str
    correlation: Correlation


class StateStore(Protocol):
    async def claim(
        self, key: str, owner: str, lease_seconds: float, *, uncalled: str | None = None
    ) -> Claim:
        """Atomically claim ``key`` for ``owner``. Re-claiming one's own live key is CLAIMED.

        ``uncalled`` names an earlier owner known to have sent nothing (its call mark was written
        but the reply lost): once its lease ran out, the key is claimed afresh, not EXPIRED.
        """

    async def complete(
        self, key: str, owner: str, result: bytes, *, message: RememberedMessage | None = None
    ) -> None:
        """Mark ``key`` done with its result; kept for the retention period.

        A key already done keeps its first result, so redeliveries republish one outcome.
        With ``message``, also record messageId -> correlation and key -> messageId (for
        webhooks and reconciliation), even when the key was already done; all of it or none.
        """

    async def release(self, key: str, owner: str) -> None:
        """Give a claim up (the command was deferred) so a later delivery can claim it.

        Only while ``owner`` still holds it; a completed key is never released.
        """

    async def mark_called(self, key: str, owner: str) -> bool:
        """Record, before the provider is called, that ``owner`` is calling for ``key``.

        What lets a successor tell "claimed, never called" (send it) from "called, answer
        unknown" (look it up first). The first call's time is kept. False when ``owner`` no
        longer holds the key (presumed dead and taken over): it must not call.
        """

    async def renew(self, held: Mapping[str, str], lease_seconds: float) -> None:
        """Extend the lease of every key in ``held`` (key -> owner) its owner still holds: the
        heartbeat that keeps a live replica's long calls from being taken over."""

    async def forget(self, key: str) -> None:
        """Drop whatever is recorded for ``key`` (a parked command replayed by a human)."""

    async def correlation_for(self, message_id: str) -> Correlation | None: ...

    async def message_for_request(self, request_key: str) -> str | None: ...

    async def first_seen(self, key: str, window_seconds: float) -> bool:
        """True the first time ``key`` is seen within the window (webhook dedupe)."""

    async def forget_seen(self, key: str) -> None:
        """Undo ``first_seen`` (the publish it guarded failed, so a retry must go through)."""

    async def open(self) -> None:
        """Connect or open files; building a store does no I/O, so this comes first."""

    async def ping(self) -> None:
        """Raise if the backend is unreachable (readiness)."""

    async def close(self) -> None: ...
