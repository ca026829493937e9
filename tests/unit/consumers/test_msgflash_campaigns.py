"""``campaign.create`` in memory: the pre-flight health read, quota, and MsgFlash errors."""

from __future__ import annotations

import pytest

from service.contract.amqp import ATTEMPTS_HEADER
from service.contract.errors import MsgFlashError, MsgFlashNoResponse
from service.contract.events import decode_event
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from tests.unit.consumers.fakes import (
    Case,
    Effects,
    InMemoryRelay,
    Parked,
    Retried,
    StubMsgFlash,
    create_campaign,
    quota_gate_closed,
)

UNAVAILABLE = MsgFlashError("PROVIDER_UNAVAILABLE", "try later", http_status=503)
WARMING = {"safetyState": "warming", "warmupPolicy": {"dailyOutboundCap": 50}}
WARNED = {"id": "cmp-1", "status": "scheduled", "safety": {"decision": "warn"}}

CASES = [
    Case(
        "a-campaign-is-created-after-reading-its-instance-health",
        Effects(calls=("instance_health", "create_campaign"), events=("campaign.created",)),
        body=create_campaign(),
    ),
    Case(
        "a-failed-health-read-does-not-hold-the-campaign-back",
        Effects(calls=("instance_health", "create_campaign"), events=("campaign.created",)),
        body=create_campaign(),
        answers={"instance_health": UNAVAILABLE},
    ),
    Case(
        "a-safety-warning-in-the-answer-is-published-after-the-result",
        Effects(
            calls=("instance_health", "create_campaign"),
            events=("campaign.created", "safety.warning"),
        ),
        body=create_campaign(),
        answers={"create_campaign": WARNED},
    ),
    Case(
        "an-unknown-instance-fails-with-campaign-failed-and-creates-nothing",
        Effects(
            calls=("list_instances",),
            events=("campaign.failed INSTANCE_NOT_FOUND",),
            parked=(Parked("INSTANCE_NOT_FOUND", attempts=0),),
            claim="failed",
        ),
        body=create_campaign(instanceId=None, instance="nope"),
    ),
    Case(
        "a-closed-quota-gate-defers-without-creating-or-using-up-a-tier",
        Effects(
            calls=("instance_health",),
            retried=(Retried(tier=0, attempts=0, deferrals=0),),
            deferred_for=("MONTHLY_OUTBOUND_QUOTA_EXCEEDED",),
            claim="free",
        ),
        given=quota_gate_closed,
        body=create_campaign(),
    ),
    Case(
        "a-retryable-error-is-retried-from-a-tier",
        Effects(
            calls=("instance_health", "create_campaign"),
            retried=(Retried(tier=0, attempts=1, deferrals=1),),
            deferred_for=("PROVIDER_UNAVAILABLE",),
            claim="free",
        ),
        body=create_campaign(),
        answers={"create_campaign": UNAVAILABLE},
    ),
    Case(
        "a-permanent-error-fails-with-campaign-failed-and-is-parked",
        Effects(
            calls=("instance_health", "create_campaign"),
            events=("campaign.failed VALIDATION_ERROR",),
            parked=(Parked("VALIDATION_ERROR", attempts=2),),
            claim="failed",
        ),
        body=create_campaign(),
        headers={ATTEMPTS_HEADER: 1},
        answers={"create_campaign": MsgFlashError("VALIDATION_ERROR", "bad", http_status=400)},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_a_campaign_command_has_exactly_the_effects_its_case_names(case: Case) -> None:
    assert await case.run() == case.expected


async def test_the_warning_of_a_warming_instance_names_its_warm_up_caps() -> None:
    client = StubMsgFlash({"instance_health": WARMING, "create_campaign": WARNED})
    relay = InMemoryRelay(client)

    await relay.deliver(create_campaign())

    warning = decode_event(relay.publisher.events[1].event.body)["data"]
    assert warning["state"] == "warming"
    assert warning["appliedLimits"] == {"dailyOutboundCap": 50}


async def test_an_unanswered_campaign_create_is_looked_up_and_never_sent_a_second_time() -> None:
    unanswered = MsgFlashNoResponse("MSGFLASH_TIMEOUT", "no answer", request_sent=True)
    relay = InMemoryRelay(StubMsgFlash({"create_campaign": unanswered}))
    await relay.deliver(create_campaign())
    retry = relay.publisher.deferrals[0].message_headers
    created_late = {**CREATED_CAMPAIGN_AS_LISTED}
    relay.client.answers = {
        **relay.client.answers,
        "list_campaigns": {"campaigns": [created_late], "hasMore": False},
    }

    await relay.deliver(create_campaign(), headers=retry)

    assert relay.client.called.count("create_campaign") == 1
    assert "list_campaigns" in relay.client.called
    created = decode_event(relay.publisher.events[-1].event.body)
    assert created["type"] == "msgflash.campaign.created"
    assert created["data"]["campaignId"] == "cmp-late"


# The campaign the unanswered create made, as MsgFlash lists it (no createdAt: counts as new).
CREATED_CAMPAIGN_AS_LISTED = {
    "id": "cmp-late",
    "instanceId": INSTANCE_MAIN,
    "name": "Launch",
    "schedule": "2030-12-01T08:00:00.000Z",
    "repeat": "none",
    "recipients": {"type": "all", "value": []},
    "type": "text",
    "body": "Hello all",
    "status": "scheduled",
}
