"""How long a command waits for a used-up quota: a send RELAY_QUOTA_MAX_WAIT_SECONDS after it
first arrived, a schedule or a campaign until its start time, however near or far (or as a
send, when replayed past it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from consumers.outcomes import Deferred, Failed, HandlerContext, QuotaDeadline, quota_wait
from service.contract.amqp import ATTEMPTS_HEADER, DEFERRALS_HEADER, FIRST_SEEN_HEADER
from service.contract.errors import ErrorInfo
from tests.clock import FakeClock
from tests.unit.consumers.fakes import (
    QUOTA,
    Effects,
    InMemoryRelay,
    Parked,
    Retried,
    StubMsgFlash,
    create_campaign,
    quota_gate_closed,
    schedule_text,
    send_text,
)

MAX_WAIT = 900.0
ARRIVED = 1_700_000_000.0
MINUTE, HOUR, WEEK = 60.0, 3600.0, 7 * 86_400.0


@pytest.mark.parametrize(
    ("starts_in", "gives_up_after"),
    [
        (None, MAX_WAIT),  # message.send: the configured bound
        (MINUTE, MINUTE),  # due in a minute: never late by the rest of the bound
        (WEEK, WEEK),  # due next week: it can still go out on time until then
        (-MINUTE, MAX_WAIT),  # past before it arrived (a replay): late on purpose, a send
    ],
    ids=["send", "start-in-a-minute", "start-next-week", "replayed-past-its-start"],
)
def test_the_wait_ends_at_the_bound_for_a_send_and_at_the_start_time_otherwise(
    starts_in: float | None, gives_up_after: float
) -> None:
    deadline = QuotaDeadline(max_wait_seconds=MAX_WAIT)
    context = HandlerContext(key="k", first_seen_at=ARRIVED)
    starts_at = None if starts_in is None else ARRIVED + starts_in

    assert deadline.give_up_at(context, starts_at) == ARRIVED + gives_up_after


def test_the_command_defers_until_the_deadline_then_fails_with_the_quota_code() -> None:
    clock = FakeClock(ARRIVED)
    context = HandlerContext(key="k", first_seen_at=ARRIVED)
    error = ErrorInfo(QUOTA.code, "quota", http_status=429, retryable=True)
    give_up_at = ARRIVED + MINUTE

    clock.advance(MINUTE - 1)
    assert quota_wait(error, context, give_up_at=give_up_at, now=clock) == Deferred(
        error, counts=False
    )
    clock.advance(1)
    failed = quota_wait(error, context, give_up_at=give_up_at, now=clock)
    assert isinstance(failed, Failed)
    assert (failed.error.code, failed.error.retryable) == (QUOTA.code, False)


# --- through the handlers -------------------------------------------------------------------
# The pipeline and the handlers read the wall clock, so these cases place each command far
# enough on either side of its deadline for the test's own run time not to matter.
WAITING = Effects(
    retried=(Retried(tier=0, attempts=0, deferrals=0),),
    deferred_for=(QUOTA.code,),
    claim="free",
)


def gave_up(routing_key: str, *calls: str) -> Effects:
    return Effects(
        calls=calls,
        events=(f"{routing_key} {QUOTA.code}",),
        parked=(Parked(QUOTA.code, attempts=0),),
        claim="failed",
    )


def at(offset: float) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).isoformat()


@dataclass(frozen=True)
class Waiting:
    """A command back from a quota wait under a gate still closed: ``waited`` seconds since it
    first arrived, its start time (if any) ``starts_in`` seconds from now."""

    id: str
    body: Callable[[float], bytes]  # the command, given its start time's offset from now
    waited: float
    expected: Effects
    starts_in: float = 0.0


def send(_: float) -> bytes:
    return send_text()


def schedule(starts_in: float) -> bytes:
    return schedule_text(scheduledAt=at(starts_in))


def campaign(starts_in: float) -> bytes:
    return create_campaign(schedule=at(starts_in))


CASES = [
    Waiting("a-send-waits-within-the-bound", send, MINUTE, WAITING),
    Waiting("a-send-fails-past-the-bound", send, MAX_WAIT + MINUTE, gave_up("message.failed")),
    Waiting(
        "a-schedule-due-later-waits-past-the-bound",
        schedule,
        MAX_WAIT + MINUTE,
        WAITING,
        starts_in=HOUR,
    ),
    Waiting(
        "a-schedule-fails-once-its-time-passed-within-the-bound",
        schedule,
        MINUTE,
        gave_up("message.failed"),
        starts_in=-MINUTE / 2,
    ),
    Waiting(
        "a-schedule-replayed-past-its-time-waits-as-a-send",
        schedule,
        MINUTE,
        WAITING,
        starts_in=-HOUR,
    ),
    Waiting(
        "a-campaign-due-later-waits-past-the-bound",
        campaign,
        MAX_WAIT + MINUTE,
        replace(WAITING, calls=("instance_health",)),
        starts_in=HOUR,
    ),
    Waiting(
        "a-campaign-fails-once-its-start-passed-within-the-bound",
        campaign,
        MINUTE,
        gave_up("campaign.failed", "instance_health"),
        starts_in=-MINUTE / 2,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_a_command_under_a_closed_quota_waits_until_its_own_deadline(case: Waiting) -> None:
    relay = InMemoryRelay(StubMsgFlash())
    await quota_gate_closed(relay)
    back_from_a_wait = {
        ATTEMPTS_HEADER: 0,
        DEFERRALS_HEADER: 0,
        FIRST_SEEN_HEADER: str(time.time() - case.waited),
    }

    await relay.deliver(case.body(case.starts_in), headers=back_from_a_wait)

    assert await relay.effects() == case.expected
