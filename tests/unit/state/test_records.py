"""The idempotency rules every backend applies: what a claim or a completion answers and writes."""

from __future__ import annotations

from service.state.records import (
    Entry,
    Held,
    decide_called,
    decide_claim,
    decide_complete,
    decide_renewal,
)
from service.state.store import Claim, ClaimStatus

NOW = 1_700_000_000.0
LEASE = 10.0
RETENTION = 3600.0


def claim(held: Held | None, owner: str = "a") -> tuple[Claim, Entry | None]:
    return decide_claim(
        held, owner=owner, now=NOW, lease_seconds=LEASE, retention_seconds=RETENTION
    )


def complete(held: Held | None, owner: str = "a", result: bytes = b"r") -> Entry | None:
    return decide_complete(held, owner=owner, now=NOW, result=result, retention_seconds=RETENTION)


def claimed_by(
    owner: str,
    *,
    claimed_at: float = NOW - 5,
    lease_until: float = NOW + 5,
    called_at: float | None = None,
) -> Held:
    return Held(owner=owner, claimed_at=claimed_at, lease_until=lease_until, called_at=called_at)


def done_by(owner: str, result: bytes = b"first") -> Held:
    return Held(owner=owner, claimed_at=NOW - 5, lease_until=NOW - 4, result=result)


# --- claims -------------------------------------------------------------------------------


def test_claiming_an_absent_key_claims_it_from_now() -> None:
    assert claim(None) == (
        Claim(ClaimStatus.CLAIMED),
        Entry(Held("a", claimed_at=NOW, lease_until=NOW + LEASE), expires_at=NOW + RETENTION),
    )


def test_reclaiming_ones_own_live_claim_renews_the_lease_and_keeps_the_claim_time() -> None:
    assert claim(claimed_by("a", claimed_at=NOW - 5)) == (
        Claim(ClaimStatus.CLAIMED),
        Entry(Held("a", claimed_at=NOW - 5, lease_until=NOW + LEASE), expires_at=NOW + RETENTION),
    )


def test_reclaiming_ones_own_lapsed_lease_is_a_renewal_not_a_takeover() -> None:
    answer, entry = claim(claimed_by("a", claimed_at=NOW - 50, lease_until=NOW - 40))

    assert answer == Claim(ClaimStatus.CLAIMED)
    assert entry is not None
    assert entry.held == Held("a", claimed_at=NOW - 50, lease_until=NOW + LEASE)


def test_a_live_claim_of_another_owner_is_busy_and_stays_as_it_is() -> None:
    assert claim(claimed_by("a"), owner="b") == (Claim(ClaimStatus.BUSY), None)


def test_a_lease_ending_now_has_lapsed() -> None:
    answer, _ = claim(claimed_by("a", lease_until=NOW, called_at=NOW - 1), owner="b")

    assert answer.status is ClaimStatus.EXPIRED


def test_a_holder_that_died_after_calling_is_taken_over_and_reports_its_first_call() -> None:
    dead = claimed_by("a", claimed_at=NOW - 50, lease_until=NOW - 40, called_at=NOW - 45)

    assert claim(dead, owner="b") == (
        Claim(ClaimStatus.EXPIRED, claimed_at=NOW - 45),
        Entry(
            Held("b", claimed_at=NOW - 50, lease_until=NOW + LEASE, called_at=NOW - 45),
            expires_at=NOW + RETENTION,
        ),
    )


def test_a_holder_that_died_before_calling_leaves_a_fresh_claim() -> None:
    dead = claimed_by("a", claimed_at=NOW - 50, lease_until=NOW - 40)

    assert claim(dead, owner="b") == (
        Claim(ClaimStatus.CLAIMED),
        Entry(Held("b", claimed_at=NOW, lease_until=NOW + LEASE), expires_at=NOW + RETENTION),
    )


def test_a_holder_known_to_have_sent_nothing_leaves_a_fresh_claim_whatever_its_record_says() -> (
    None
):
    marked = claimed_by("a", claimed_at=NOW - 50, lease_until=NOW - 40, called_at=NOW - 45)

    assert decide_claim(
        marked,
        owner="b",
        now=NOW,
        lease_seconds=LEASE,
        retention_seconds=RETENTION,
        uncalled="a",
    ) == (
        Claim(ClaimStatus.CLAIMED),
        Entry(Held("b", claimed_at=NOW, lease_until=NOW + LEASE), expires_at=NOW + RETENTION),
    )


def test_naming_another_holder_as_uncalled_changes_nothing() -> None:
    marked = claimed_by("a", claimed_at=NOW - 50, lease_until=NOW - 40, called_at=NOW - 45)
    named_c = decide_claim(
        marked, owner="b", now=NOW, lease_seconds=LEASE, retention_seconds=RETENTION, uncalled="c"
    )

    assert named_c == claim(marked, owner="b")
    live = claimed_by("a", called_at=NOW - 1)
    assert decide_claim(
        live, owner="b", now=NOW, lease_seconds=LEASE, retention_seconds=RETENTION, uncalled="a"
    ) == (Claim(ClaimStatus.BUSY), None)


def test_a_renewal_keeps_the_call_time() -> None:
    _, entry = claim(claimed_by("a", called_at=NOW - 2))

    assert entry is not None and entry.held.called_at == NOW - 2


# --- the call mark and the heartbeat ----------------------------------------------------------


def called(held: Held | None, owner: str = "a") -> tuple[bool, Entry | None]:
    return decide_called(held, owner=owner, now=NOW, retention_seconds=RETENTION)


def test_marking_a_call_records_its_time_once() -> None:
    holds, entry = called(claimed_by("a"))
    assert holds and entry is not None and entry.held.called_at == NOW

    assert called(claimed_by("a", called_at=NOW - 3)) == (True, None)


def test_a_claim_taken_over_or_done_cannot_be_marked() -> None:
    assert called(claimed_by("b")) == (False, None)
    assert called(done_by("a")) == (False, None)
    assert called(None) == (False, None)


def renewed(held: Held | None, owner: str = "a") -> Entry | None:
    return decide_renewal(
        held, owner=owner, now=NOW, lease_seconds=LEASE, retention_seconds=RETENTION
    )


def test_a_heartbeat_extends_only_its_own_unfinished_claims() -> None:
    entry = renewed(claimed_by("a", lease_until=NOW + 1, called_at=NOW - 1))
    assert entry is not None
    assert entry.held == Held("a", NOW - 5, lease_until=NOW + LEASE, called_at=NOW - 1)

    assert renewed(claimed_by("b")) is None
    assert renewed(done_by("a")) is None
    assert renewed(None) is None


def test_a_done_key_answers_its_result_to_anyone_and_stays_as_it_is() -> None:
    assert claim(done_by("a"), owner="b") == (Claim(ClaimStatus.DONE, result=b"first"), None)
    assert claim(done_by("a"), owner="a") == (Claim(ClaimStatus.DONE, result=b"first"), None)


def test_an_empty_result_is_still_a_result() -> None:
    assert claim(done_by("a", result=b"")) == (Claim(ClaimStatus.DONE, result=b""), None)


# --- completions ----------------------------------------------------------------------------


def test_completing_an_absent_key_records_the_result_from_now() -> None:
    assert complete(None, result=b"r") == Entry(
        Held("a", claimed_at=NOW, lease_until=NOW, result=b"r"), expires_at=NOW + RETENTION
    )


def test_completing_a_claimed_key_keeps_its_claim_time_and_ends_the_lease() -> None:
    assert complete(claimed_by("b", claimed_at=NOW - 5), owner="a") == Entry(
        Held("a", claimed_at=NOW - 5, lease_until=NOW, result=b"r"), expires_at=NOW + RETENTION
    )


def test_a_live_done_key_keeps_its_first_result() -> None:
    assert complete(done_by("a", result=b"first"), owner="b", result=b"late") is None


def test_an_expired_done_record_is_absent_so_a_completion_writes_afresh() -> None:
    expired = Entry(done_by("a", result=b"old"), expires_at=NOW)

    assert expired.live_at(NOW) is None
    assert complete(expired.live_at(NOW), result=b"new") == Entry(
        Held("a", claimed_at=NOW, lease_until=NOW, result=b"new"), expires_at=NOW + RETENTION
    )


def test_a_record_is_live_until_its_expiry() -> None:
    entry = Entry(done_by("a"), expires_at=NOW + 1)

    assert entry.live_at(NOW) == done_by("a")
    assert entry.live_at(NOW + 1) is None
