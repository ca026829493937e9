"""The idempotency record and the rules that change it: pure, shared by the backends.

A backend reads a key's record, asks ``decide_claim`` or ``decide_complete`` what to answer
and what to write, and writes it; it owns only the reading, the writing and the atomicity.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.state.store import Claim, ClaimStatus


@dataclass(frozen=True, slots=True)
class Held:
    """One idempotency record: claimed while ``result`` is None, done once it is set."""

    owner: str
    claimed_at: float
    lease_until: float
    result: bytes | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """A record as stored: it counts as absent from ``expires_at`` on."""

    held: Held
    expires_at: float

    def live_at(self, now: float) -> Held | None:
        return self.held if self.expires_at > now else None


def decide_claim(
    held: Held | None, *, owner: str, now: float, lease_seconds: float, retention_seconds: float
) -> tuple[Claim, Entry | None]:
    """The answer to ``owner`` claiming a key whose live record is ``held``, and what to store.

    The entry is None when the record stays as it is (done, or another owner's live lease).
    A renewal or a takeover keeps the first ``claimed_at``: a takeover reports it, so the new
    holder can reconcile everything sent since the first attempt.
    """
    if held is not None and held.result is not None:
        return Claim(ClaimStatus.DONE, result=held.result), None
    if held is not None and held.owner != owner and held.lease_until > now:
        return Claim(ClaimStatus.BUSY), None
    claimed_at = now if held is None else held.claimed_at
    renewed = Held(owner=owner, claimed_at=claimed_at, lease_until=now + lease_seconds)
    entry = Entry(renewed, expires_at=now + retention_seconds)
    if held is None or held.owner == owner:
        return Claim(ClaimStatus.CLAIMED), entry
    return Claim(ClaimStatus.EXPIRED, claimed_at=held.claimed_at), entry


def decide_complete(
    held: Held | None, *, owner: str, now: float, result: bytes, retention_seconds: float
) -> Entry | None:
    """The done record to store for ``owner``'s ``result``; None keeps a live done record.

    The first completion wins: redeliveries must republish one stable result.
    """
    if held is not None and held.result is not None:
        return None
    claimed_at = now if held is None else held.claimed_at
    done = Held(owner=owner, claimed_at=claimed_at, lease_until=now, result=result)
    return Entry(done, expires_at=now + retention_seconds)
