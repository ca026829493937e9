"""The idempotency record and the rules that change it: pure, shared by the backends.

A backend reads a key's record, asks ``decide_claim`` or ``decide_complete`` what to answer
and what to write, and writes it; it owns only the reading, the writing and the atomicity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from service.state.store import Claim, ClaimStatus


@dataclass(frozen=True, slots=True)
class Held:
    """One idempotency record: claimed while ``result`` is None, done once it is set."""

    owner: str
    claimed_at: float
    lease_until: float
    result: bytes | None = None
    # When the holder was about to call the provider (None: it never got that far).
    called_at: float | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """A record as stored: it counts as absent from ``expires_at`` on."""

    held: Held
    expires_at: float

    def live_at(self, now: float) -> Held | None:
        return self.held if self.expires_at > now else None


def decide_claim(
    held: Held | None,
    *,
    owner: str,
    now: float,
    lease_seconds: float,
    retention_seconds: float,
    uncalled: str | None = None,
) -> tuple[Claim, Entry | None]:
    """The answer to ``owner`` claiming a key whose live record is ``held``, and what to store.

    The entry is None when the record stays as it is (done, or another owner's live lease).
    A renewal keeps the record's times. A takeover depends on how far the dead holder got: one
    that never reached the provider call left nothing to find there, so the key is claimed
    afresh; one that did is reported EXPIRED with the time of its first call, so the new holder
    looks for what that call may have created before calling again. A holder named
    ``uncalled`` is known to have sent nothing, whatever its record says: it counts as one that
    never reached the call.
    """
    if held is not None and held.result is not None:
        return Claim(ClaimStatus.DONE, result=held.result), None
    if held is not None and held.owner != owner and held.lease_until > now:
        return Claim(ClaimStatus.BUSY), None
    if held is not None and held.owner == uncalled and held.owner != owner:
        held = replace(held, called_at=None)
    if held is None or held.called_at is None or held.owner == owner:
        kept = held if held is not None and held.owner == owner else None
        fresh = Held(
            owner=owner,
            claimed_at=now if kept is None else kept.claimed_at,
            lease_until=now + lease_seconds,
            called_at=None if kept is None else kept.called_at,
        )
        return Claim(ClaimStatus.CLAIMED), Entry(fresh, expires_at=now + retention_seconds)
    taken = replace(held, owner=owner, lease_until=now + lease_seconds)
    entry = Entry(taken, expires_at=now + retention_seconds)
    return Claim(ClaimStatus.EXPIRED, claimed_at=held.called_at), entry


def decide_called(
    held: Held | None, *, owner: str, now: float, retention_seconds: float
) -> tuple[bool, Entry | None]:
    """``owner`` is about to call the provider: is the key still its own, and what to store.

    The first call's time is kept: a later holder must look back to it.
    """
    if held is None or held.owner != owner or held.result is not None:
        return False, None
    if held.called_at is not None:
        return True, None
    return True, Entry(replace(held, called_at=now), expires_at=now + retention_seconds)


def decide_renewal(
    held: Held | None, *, owner: str, now: float, lease_seconds: float, retention_seconds: float
) -> Entry | None:
    """A live holder's heartbeat: its lease runs on; a key lost or finished is left alone."""
    if held is None or held.owner != owner or held.result is not None:
        return None
    renewed = replace(held, lease_until=now + lease_seconds)
    return Entry(renewed, expires_at=now + retention_seconds)


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
