"""``message.send`` / ``message.schedule`` in memory: instances, reconciliation, quota, errors.

The handler runs inside the real pipeline, so each case states what reaches the bus.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.contract.amqp import ATTEMPTS_HEADER, DEFERRALS_HEADER, RECONCILE_HEADER
from service.contract.errors import (
    FieldProblem,
    MsgFlashError,
    MsgFlashNoResponse,
    MsgFlashOutcomeUnknown,
)
from service.contract.events import decode_event
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from tests.unit.consumers.fakes import (
    QUOTA,
    RECIPIENT,
    SOME_TIME,
    START,
    Case,
    Effects,
    InMemoryRelay,
    Parked,
    Retried,
    StubMsgFlash,
    held_by_a_replica_that_died,
    quota_gate_closed,
    schedule_text,
    send_text,
)

UNAVAILABLE = MsgFlashError("PROVIDER_UNAVAILABLE", "try later", http_status=503)
TIMED_OUT = MsgFlashNoResponse("MSGFLASH_TIMEOUT", "no answer", request_sent=True)


def listed(*, created_at: float, **fields: Any) -> dict[str, Any]:
    """``GET /messages`` listing one message: the text ``send_text()`` sends, unless overridden."""
    message = {
        "id": "msg-found",
        "direction": "outbound",
        "instanceId": INSTANCE_MAIN,
        "to": RECIPIENT,
        "type": "text",
        "body": "Hi",
        "createdAt": datetime.fromtimestamp(created_at, UTC).isoformat(),
        **fields,
    }
    return {"messages": [message], "hasMore": False}


JUST_AFTER = listed(created_at=START + 1)  # sent by the earlier try, after it claimed
AN_HOUR_BEFORE = listed(created_at=START - 3600)  # the same text, sent long before
ANSWER_LOST = {RECONCILE_HEADER: START, DEFERRALS_HEADER: 1, ATTEMPTS_HEADER: 1}


SENT = Effects(calls=("send_message",), events=("message.sent",))
PARKED_AS = "message.failed {}".format

CASES = [
    Case("a-send-publishes-message-sent", SENT),
    Case(
        "a-schedule-publishes-message-scheduled",
        Effects(calls=("schedule_message",), events=("message.scheduled",)),
        body=schedule_text(),
    ),
    Case(
        "a-safety-warning-in-the-answer-is-published-after-the-result",
        Effects(calls=("send_message",), events=("message.sent", "safety.warning")),
        answers={"send_message": {"id": "msg-1", "warnings": ["new contact"]}},
    ),
    # --- which instance --------------------------------------------------------------------
    Case(
        "an-instance-named-by-name-is-resolved-from-the-instance-list",
        Effects(calls=("list_instances", "send_message"), events=("message.sent",)),
        body=send_text(instanceId=None, instance="main"),
    ),
    Case(
        "an-unknown-instance-fails-with-instance-not-found-and-sends-nothing",
        Effects(
            calls=("list_instances",),
            events=(PARKED_AS("INSTANCE_NOT_FOUND"),),
            parked=(Parked("INSTANCE_NOT_FOUND", attempts=0),),
            claim="failed",
        ),
        body=send_text(instanceId=None, instance="nope"),
    ),
    Case(
        "an-unreadable-instance-list-is-deferred-counting-no-send-attempt",
        Effects(
            calls=("list_instances",),
            retried=(Retried(tier=0, attempts=0, deferrals=1),),
            deferred_for=("PROVIDER_UNAVAILABLE",),
            claim="free",
        ),
        body=send_text(instanceId=None, instance="main"),
        answers={"list_instances": UNAVAILABLE},
    ),
    # --- reconciliation --------------------------------------------------------------------
    Case(
        "after-a-dead-holder-a-message-found-at-msgflash-is-reported-not-resent",
        Effects(calls=("list_messages",), events=("message.sent",)),
        given=held_by_a_replica_that_died,
        answers={"list_messages": JUST_AFTER},
    ),
    Case(
        "after-a-dead-holder-nothing-found-fails-as-outcome-unknown-by-default",
        Effects(
            calls=("list_messages",),
            events=(PARKED_AS("OUTCOME_UNKNOWN"),),
            parked=(Parked("OUTCOME_UNKNOWN", attempts=0),),
            claim="failed",
        ),
        given=held_by_a_replica_that_died,
    ),
    Case(
        "after-a-dead-holder-nothing-found-is-resent-under-the-resend-policy",
        Effects(calls=("list_messages", "send_message"), events=("message.sent",)),
        given=held_by_a_replica_that_died,
        outcome_unknown_policy="resend",
    ),
    Case(
        "after-a-lost-answer-a-message-found-at-msgflash-is-reported-not-resent",
        Effects(calls=("list_messages",), events=("message.sent",)),
        headers=ANSWER_LOST,
        answers={"list_messages": JUST_AFTER},
    ),
    Case(
        "after-a-lost-answer-nothing-found-is-sent-again",
        Effects(calls=("list_messages", "send_message"), events=("message.sent",)),
        headers=ANSWER_LOST,
    ),
    Case(
        "an-older-message-with-the-same-text-is-not-taken-for-the-lost-one",
        Effects(calls=("list_messages", "send_message"), events=("message.sent",)),
        headers=ANSWER_LOST,
        answers={"list_messages": AN_HOUR_BEFORE},
    ),
    Case(
        "a-second-unanswered-send-still-reconciles-from-the-first",
        Effects(
            calls=("list_messages", "send_message"),
            retried=(Retried(tier=1, attempts=2, deferrals=2, reconcile_since=START),),
            deferred_for=("MSGFLASH_TIMEOUT",),
            claim="free",
        ),
        headers=ANSWER_LOST,
        answers={"send_message": TIMED_OUT},
    ),
    Case(
        # Through the pipeline's crash path (the error escapes the handler): the claim stays
        # held, so the next delivery waits for the lease to expire and reconciles again.
        "a-failed-reconciliation-after-a-dead-holder-sends-nothing-and-keeps-the-claim",
        Effects(
            calls=("list_messages",),
            retried=(Retried(tier=0, attempts=0, deferrals=1),),
            deferred_for=("RELAY_INTERNAL_ERROR",),
            claim="held",
        ),
        given=held_by_a_replica_that_died,
        answers={"list_messages": UNAVAILABLE},
    ),
    Case(
        # A typed deferral, not the crash path: it waits to look again, and never resends.
        "a-failed-reconciliation-after-a-lost-answer-sends-nothing-and-keeps-its-time",
        Effects(
            calls=("list_messages",),
            retried=(Retried(tier=1, attempts=1, deferrals=2, reconcile_since=START),),
            deferred_for=("OUTCOME_UNKNOWN",),
            claim="free",
        ),
        headers=ANSWER_LOST,
        answers={"list_messages": UNAVAILABLE},
    ),
    # --- quota -----------------------------------------------------------------------------
    Case(
        "a-closed-quota-gate-defers-without-a-call-or-using-up-a-tier",
        Effects(
            retried=(Retried(tier=0, attempts=0, deferrals=0),),
            deferred_for=("MONTHLY_OUTBOUND_QUOTA_EXCEEDED",),
            claim="free",
        ),
        given=quota_gate_closed,
    ),
    Case(
        "a-quota-error-defers-without-using-up-a-tier",
        Effects(
            calls=("send_message",),
            retried=(Retried(tier=0, attempts=1, deferrals=0),),
            deferred_for=("MONTHLY_OUTBOUND_QUOTA_EXCEEDED",),
            claim="free",
        ),
        answers={"send_message": QUOTA},
    ),
    # --- MsgFlash errors -------------------------------------------------------------------
    *(
        Case(
            f"{error.code.lower()}-{error.http_status}-is-retried-from-a-tier",
            Effects(
                calls=("send_message",),
                retried=(Retried(tier=0, attempts=1, deferrals=1),),
                deferred_for=(error.code,),
                claim="free",
            ),
            answers={"send_message": error},
        )
        for error in (
            MsgFlashError("API_RATE_LIMIT_EXCEEDED", "slow down", http_status=429),
            MsgFlashError("INTERNAL_ERROR", "oops", http_status=500),
            UNAVAILABLE,
        )
    ),
    Case(
        "an-unanswered-send-whose-check-failed-is-retried-reconciling-first",
        Effects(
            calls=("send_message",),
            retried=(Retried(tier=0, attempts=1, deferrals=1, reconcile_since=SOME_TIME),),
            deferred_for=("OUTCOME_UNKNOWN",),
            claim="free",
        ),
        answers={"send_message": MsgFlashOutcomeUnknown("no answer, and no way to check")},
    ),
    *(
        Case(
            f"{error.code.lower()}-{error.http_status}-fails-for-good-and-is-parked",
            Effects(
                calls=("send_message",),
                events=(PARKED_AS(error.code),),
                parked=(Parked(error.code, attempts=2),),
                claim="failed",
            ),
            headers={ATTEMPTS_HEADER: 1},  # one attempt before: the failure counts both
            answers={"send_message": error},
        )
        for error in (
            MsgFlashError("VALIDATION_ERROR", "bad `to`", http_status=400),
            MsgFlashError("FEATURE_NOT_AVAILABLE", "upgrade", http_status=403),
            MsgFlashError("TEMPLATE_NOT_FOUND", "no such template", http_status=404),
        )
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_a_message_command_has_exactly_the_effects_its_case_names(case: Case) -> None:
    assert await case.run() == case.expected


async def test_a_quota_error_closes_the_gate_so_the_next_command_is_not_sent() -> None:
    relay = InMemoryRelay(StubMsgFlash({"send_message": QUOTA}))
    await relay.deliver(send_text(id_="first"))

    await relay.deliver(send_text(id_="second"))

    assert relay.client.called == ("send_message",)
    assert len(relay.publisher.deferrals) == 2


async def test_a_permanent_failure_reports_msgflash_status_and_details() -> None:
    details = (FieldProblem("to", "not a WhatsApp number"),)
    error = MsgFlashError("VALIDATION_ERROR", "bad `to`", http_status=400, details=details)
    relay = InMemoryRelay(StubMsgFlash({"send_message": error}))

    await relay.deliver(send_text())

    (failure,) = relay.publisher.events
    assert decode_event(failure.event.body)["data"]["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "bad `to`",
        "httpStatus": 400,
        "retryable": False,
        "details": [{"field": "to", "message": "not a WhatsApp number"}],
    }
