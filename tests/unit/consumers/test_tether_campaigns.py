"""``tether.campaign.create`` in memory: the daily quota, segments, lost answers, Tether errors.

The handler runs inside the real pipeline, so each case states what reaches the bus.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.contract.amqp import ATTEMPTS_HEADER, DEFERRALS_HEADER, RECONCILE_HEADER
from service.contract.errors import TETHER_AUTH_FAILED, TetherError, TetherNoResponse
from service.contract.events import decode_event
from tests.unit.consumers.fakes import (
    SOME_TIME,
    START,
    TETHER_CAMPAIGN,
    TETHER_DAY,
    TETHER_NEXT_DAY,
    Case,
    Effects,
    InMemoryRelay,
    Parked,
    Retried,
    StubMsgFlash,
    StubTether,
    create_tether_campaign,
)

FULL = {"available": False, "remaining": 0, "limit": 500, "message": "daily limit reached"}
TWO_DAYS = {
    "segments": [
        {"contactCount": 1, "scheduledDate": TETHER_DAY},
        {"contactCount": 1, "scheduledDate": TETHER_NEXT_DAY},
    ]
}
AUTH_REFUSED = TetherError(TETHER_AUTH_FAILED, "Tether refused TETHER_API_TOKEN", http_status=401)
UNAVAILABLE = TetherError("HTTP_503", "try later", http_status=503)
TIMED_OUT = TetherNoResponse("TETHER_TIMEOUT", "no answer", request_sent=True)
ANSWER_LOST = {RECONCILE_HEADER: START, DEFERRALS_HEADER: 1, ATTEMPTS_HEADER: 1}


def listed(*, created_at: float) -> list[dict[str, Any]]:
    """``GET /api/campaigns`` holding the campaign ``create_tether_campaign()`` creates."""
    return [
        {
            "_id": "65f1c0de00000000000000b2",
            **TETHER_CAMPAIGN,
            "status": "scheduled",
            "createdAt": datetime.fromtimestamp(created_at, UTC).isoformat(),
        }
    ]


JUST_AFTER = listed(created_at=START + 1)  # created by the earlier try, after it was sent
AN_HOUR_BEFORE = listed(created_at=START - 3600)  # the same campaign, created long before

CREATED = Effects(calls=("validate_date", "create_campaign"), events=("tether.campaign.created",))
PARKED_AS = "tether.campaign.failed {}".format

CASES = [
    Case("a-campaign-that-fits-its-day-is-created", CREATED, body=create_tether_campaign()),
    Case(
        "a-campaign-with-quota-skip-is-created-without-a-check",
        Effects(calls=("create_campaign",), events=("tether.campaign.created",)),
        body=create_tether_campaign(quota="skip"),
    ),
    # --- the daily quota -------------------------------------------------------------------
    Case(
        "a-campaign-over-its-day-s-quota-fails-with-the-next-date-and-creates-nothing",
        Effects(
            calls=("validate_date", "next_available_slot"),
            events=(PARKED_AS("TETHER_DAILY_QUOTA_EXCEEDED"),),
            parked=(Parked("TETHER_DAILY_QUOTA_EXCEEDED", attempts=0),),
            claim="failed",
        ),
        body=create_tether_campaign(),
        tether_answers={"validate_date": FULL},
    ),
    Case(
        "a-segmented-campaign-is-created-once-per-segment",
        Effects(
            calls=("auto_segment", "create_campaign", "create_campaign"),
            events=("tether.campaign.created",),
        ),
        body=create_tether_campaign(quota="segment"),
        tether_answers={"auto_segment": TWO_DAYS},
    ),
    # --- reconciliation --------------------------------------------------------------------
    Case(
        "after-a-lost-answer-a-campaign-found-at-tether-is-reported-not-created-again",
        Effects(calls=("list_campaigns",), events=("tether.campaign.created",)),
        body=create_tether_campaign(),
        headers=ANSWER_LOST,
        tether_answers={"list_campaigns": JUST_AFTER},
    ),
    Case(
        "after-a-lost-answer-nothing-found-is-created-once",
        Effects(
            calls=("list_campaigns", "validate_date", "create_campaign"),
            events=("tether.campaign.created",),
        ),
        body=create_tether_campaign(),
        headers=ANSWER_LOST,
    ),
    Case(
        "an-older-campaign-with-the-same-content-is-not-taken-for-the-lost-one",
        Effects(
            calls=("list_campaigns", "validate_date", "create_campaign"),
            events=("tether.campaign.created",),
        ),
        body=create_tether_campaign(),
        headers=ANSWER_LOST,
        tether_answers={"list_campaigns": AN_HOUR_BEFORE},
    ),
    Case(
        "an-unanswered-create-is-retried-looking-for-it-first",
        Effects(
            calls=("validate_date", "create_campaign"),
            retried=(Retried(tier=0, attempts=1, deferrals=1, reconcile_since=SOME_TIME),),
            deferred_for=("TETHER_TIMEOUT",),
            claim="free",
        ),
        body=create_tether_campaign(),
        tether_answers={"create_campaign": TIMED_OUT},
    ),
    # --- Tether errors ---------------------------------------------------------------------
    Case(
        "refused-credentials-fail-for-good-and-are-not-retried",
        Effects(
            calls=("validate_date", "create_campaign"),
            events=(PARKED_AS(TETHER_AUTH_FAILED),),
            parked=(Parked(TETHER_AUTH_FAILED, attempts=1),),
            claim="failed",
        ),
        body=create_tether_campaign(),
        tether_answers={"create_campaign": AUTH_REFUSED},
    ),
    *(
        Case(
            f"{error.code.lower()}-on-create-is-retried-from-a-tier",
            Effects(
                calls=("validate_date", "create_campaign"),
                retried=(Retried(tier=0, attempts=1, deferrals=1),),
                deferred_for=(error.code,),
                claim="free",
            ),
            body=create_tether_campaign(),
            tether_answers={"create_campaign": error},
        )
        for error in (
            TetherError("HTTP_429", "slow down", http_status=429),
            TetherError("HTTP_500", "oops", http_status=500),
            UNAVAILABLE,
        )
    ),
    Case(
        "an-unanswered-quota-check-is-retried-counting-no-create-attempt",
        Effects(
            calls=("validate_date",),
            retried=(Retried(tier=0, attempts=0, deferrals=1),),
            deferred_for=("HTTP_503",),
            claim="free",
        ),
        body=create_tether_campaign(),
        tether_answers={"validate_date": UNAVAILABLE},
    ),
    Case(
        "without-a-tether-account-the-command-fails-provider-not-configured",
        Effects(
            events=(PARKED_AS("PROVIDER_NOT_CONFIGURED"),),
            parked=(Parked("PROVIDER_NOT_CONFIGURED", attempts=0),),
            claim="failed",
        ),
        body=create_tether_campaign(),
        tether_answers=None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_a_tether_campaign_command_has_exactly_the_effects_its_case_names(case: Case) -> None:
    assert await case.run() == case.expected


async def test_a_campaign_over_its_day_s_quota_names_the_next_available_date() -> None:
    relay = InMemoryRelay(StubMsgFlash(), tether=StubTether({"validate_date": FULL}))

    await relay.deliver(create_tether_campaign())

    (failure,) = relay.publisher.events
    error = decode_event(failure.event.body)["data"]["error"]
    assert TETHER_NEXT_DAY in error["message"]
    assert error["details"] == [
        {
            "field": "data.scheduleDate",
            "message": "daily limit reached",
            "nextAvailableDate": TETHER_NEXT_DAY,
        }
    ]


async def test_a_campaign_found_after_a_lost_answer_is_reported_by_its_tether_id() -> None:
    relay = InMemoryRelay(StubMsgFlash(), tether=StubTether({"list_campaigns": JUST_AFTER}))

    await relay.deliver(create_tether_campaign(), headers=ANSWER_LOST)

    (created,) = relay.publisher.events
    assert decode_event(created.event.body)["data"]["campaignId"] == "65f1c0de00000000000000b2"
