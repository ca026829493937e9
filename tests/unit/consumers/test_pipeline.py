"""The command pipeline in memory: what each kind of delivery publishes, parks, defers and acks.

Each case gives the state a delivery meets (the store, its headers, MsgFlash's answers) and the
whole of what it must do; see ``fakes.Effects``.
"""

from __future__ import annotations

import json

import pytest

from consumers.results import encode_result
from service.contract.amqp import (
    ATTEMPTS_HEADER,
    DEFERRALS_HEADER,
    RECONCILE_HEADER,
    REPLAYED_HEADER,
    RETRY_TIER_HEADER,
)
from service.contract.commands import CommandIdentity, CommandType
from service.contract.errors import ErrorInfo, MsgFlashError, MsgFlashNoResponse
from service.contract.events import OutgoingEvent, failure_event
from tests.unit.consumers.fakes import (
    COMMAND_ID,
    KEY,
    LEASE_SECONDS,
    SOME_TIME,
    SOURCE,
    Case,
    Effects,
    InMemoryRelay,
    Parked,
    Retried,
    StubMsgFlash,
    held_by_a_replica_that_died,
    send_text,
)

STORED_RESULT = OutgoingEvent(
    id="stored-1", type="msgflash.message.sent", routing_key="message.sent", body=b'{"data":{}}'
)
STORED_FAILURE = failure_event(
    CommandIdentity(COMMAND_ID, SOURCE, CommandType.SEND_MESSAGE),
    ErrorInfo("VALIDATION_ERROR", "`to` is not a number", http_status=400),
    attempts=1,
)
UNAVAILABLE = MsgFlashError("PROVIDER_UNAVAILABLE", "try later", http_status=503)


async def succeeded_earlier(relay: InMemoryRelay) -> None:
    await relay.store.complete(KEY, "earlier:0", encode_result((STORED_RESULT,), succeeded=True))


async def failed_earlier(relay: InMemoryRelay) -> None:
    await relay.store.complete(KEY, "earlier:0", encode_result((STORED_FAILURE,), succeeded=False))


async def held_by_a_live_replica(relay: InMemoryRelay) -> None:
    await relay.store.claim(KEY, "other:0", LEASE_SECONDS)


CASES = [
    Case(
        "a-new-command-is-sent-its-result-published-and-acked",
        Effects(calls=("send_message",), events=("message.sent",)),
    ),
    Case(
        "claim-done-republishes-the-stored-events-without-a-call",
        Effects(events=("message.sent",)),
        given=succeeded_earlier,
    ),
    Case(
        "claim-done-as-failed-republishes-the-failure-without-parking-it-again",
        Effects(events=("message.failed VALIDATION_ERROR",), claim="failed"),
        given=failed_earlier,
    ),
    Case(
        "claim-busy-is-deferred-without-using-up-a-tier",
        Effects(
            retried=(Retried(tier=0, attempts=0, deferrals=0),),
            deferred_for=("COMMAND_IN_PROGRESS",),
            claim="held",
        ),
        given=held_by_a_live_replica,
    ),
    Case(
        "claim-busy-at-the-last-tier-is-deferred-again-not-exhausted",
        Effects(
            retried=(Retried(tier=3, attempts=4, deferrals=4),),
            deferred_for=("COMMAND_IN_PROGRESS",),
            claim="held",
        ),
        given=held_by_a_live_replica,
        headers={DEFERRALS_HEADER: 4, ATTEMPTS_HEADER: 4},
    ),
    Case(
        # The handler is told to reconcile: it looks for the message instead of sending, and
        # with nothing found (policy "fail") reports the outcome as unknown.
        "claim-expired-looks-for-the-message-before-any-send",
        Effects(
            calls=("list_messages",),
            events=("message.failed OUTCOME_UNKNOWN",),
            parked=(Parked("OUTCOME_UNKNOWN", attempts=0),),
            claim="failed",
        ),
        given=held_by_a_replica_that_died,
    ),
    Case(
        "a-replayed-parked-command-is-processed-afresh",
        Effects(calls=("send_message",), events=("message.sent",)),
        given=failed_earlier,
        headers={REPLAYED_HEADER: True},
    ),
    Case(
        "a-replayed-command-that-had-succeeded-is-not-sent-again",
        Effects(events=("message.sent",)),
        given=succeeded_earlier,
        headers={REPLAYED_HEADER: True},
    ),
    Case(
        "a-retryable-error-defers-to-the-first-tier-and-releases-the-claim",
        Effects(
            calls=("send_message",),
            retried=(Retried(tier=0, attempts=1, deferrals=1),),
            deferred_for=("PROVIDER_UNAVAILABLE",),
            claim="free",
        ),
        answers={"send_message": UNAVAILABLE},
    ),
    Case(
        "a-deferral-goes-one-tier-up-and-adds-its-attempts",
        Effects(
            calls=("send_message",),
            retried=(Retried(tier=1, attempts=3, deferrals=2),),
            deferred_for=("PROVIDER_UNAVAILABLE",),
            claim="free",
        ),
        headers={DEFERRALS_HEADER: 1, ATTEMPTS_HEADER: 2},
        answers={"send_message": UNAVAILABLE},
    ),
    Case(
        "an-unanswered-send-is-deferred-with-the-time-to-reconcile-from",
        Effects(
            calls=("send_message",),
            retried=(Retried(tier=0, attempts=1, deferrals=1, reconcile_since=SOME_TIME),),
            deferred_for=("MSGFLASH_TIMEOUT",),
            claim="free",
        ),
        answers={
            "send_message": MsgFlashNoResponse("MSGFLASH_TIMEOUT", "no answer", request_sent=True)
        },
    ),
    Case(
        "a-retryable-error-at-the-last-tier-fails-with-retries-exhausted",
        Effects(
            calls=("send_message",),
            events=("message.failed RETRIES_EXHAUSTED",),
            parked=(Parked("RETRIES_EXHAUSTED", attempts=5),),
            claim="failed",
        ),
        headers={DEFERRALS_HEADER: 4, ATTEMPTS_HEADER: 4},
        answers={"send_message": UNAVAILABLE},
    ),
    Case(
        "an-invalid-command-is-parked-as-invalid-event-without-a-call",
        Effects(
            events=("message.failed INVALID_EVENT",),
            parked=(Parked("INVALID_EVENT", attempts=0),),
            claim="free",
        ),
        body=send_text(to="hello"),
    ),
    Case(
        "unreadable-bytes-are-parked-as-invalid-event-without-a-call",
        Effects(
            events=("message.failed INVALID_EVENT",),
            parked=(Parked("INVALID_EVENT", attempts=0),),
            claim="free",
        ),
        body=b"\xff not json",
    ),
    Case(
        # It may have crashed mid-call: the claim stays, so the next holder reconciles first.
        "a-crashing-handler-is-deferred-as-relay-internal-error-keeping-its-claim",
        Effects(
            calls=("send_message",),
            retried=(Retried(tier=0, attempts=0, deferrals=1),),
            deferred_for=("RELAY_INTERNAL_ERROR",),
            claim="held",
        ),
        answers={"send_message": RuntimeError("bug")},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_a_delivery_has_exactly_the_effects_its_case_names(case: Case) -> None:
    assert await case.run() == case.expected


async def test_commands_are_counted_by_account_and_unserved_accounts_share_one_label() -> None:
    relay = InMemoryRelay(StubMsgFlash())
    elsewhere = {**json.loads(send_text(id_="for-elsewhere")), "account": "elsewhere"}
    unparseable = {**json.loads(send_text(id_="bad", to="12")), "account": "other"}

    await relay.deliver(send_text())
    await relay.deliver(json.dumps(elsewhere).encode())
    await relay.deliver(json.dumps(unparseable).encode())

    counted = {
        (sample.labels["account"], sample.labels["outcome"]): sample.value
        for metric in relay.metrics.commands.collect()
        for sample in metric.samples
        if sample.name == "relay_commands_total"
    }
    assert counted == {
        ("default", "succeeded"): 1,
        ("_unknown", "succeeded"): 1,
        ("_unknown", "invalid"): 1,
    }


async def test_a_duplicate_republishes_the_stored_events_unchanged() -> None:
    relay = InMemoryRelay(StubMsgFlash())
    await succeeded_earlier(relay)

    await relay.deliver(send_text(), correlation_id="corr-9", reply_to="amq.gen-reply")

    (published,) = relay.publisher.events
    assert published.event == STORED_RESULT
    assert (published.correlation_id, published.reply_to) == ("corr-9", "amq.gen-reply")


async def test_only_the_result_goes_to_reply_to_not_the_safety_warning() -> None:
    warned = {"id": "msg-1", "status": "queued", "safety": {"decision": "warn"}}
    relay = InMemoryRelay(StubMsgFlash({"send_message": warned}))

    await relay.deliver(send_text(), reply_to="amq.gen-reply")

    assert [(p.event.routing_key, p.reply_to) for p in relay.publisher.events] == [
        ("message.sent", "amq.gen-reply"),
        ("safety.warning", None),
    ]


async def test_a_redelivery_this_replica_already_published_is_acked_without_publishing() -> None:
    relay = InMemoryRelay(StubMsgFlash())
    await relay.deliver(send_text())

    await relay.deliver(send_text(), redelivered=True)

    assert relay.client.called == ("send_message",)
    assert len(relay.publisher.events) == 1
    assert relay.channel.acked == {1, 2}


async def test_a_redelivery_another_replica_published_is_published_again() -> None:
    first = InMemoryRelay(StubMsgFlash())
    second = InMemoryRelay(StubMsgFlash(), shared_store=first.store)
    await first.deliver(send_text())

    await second.deliver(send_text(), redelivered=True)

    assert second.client.called == ()
    assert [p.event for p in second.publisher.events] == [p.event for p in first.publisher.events]


async def test_a_parked_command_keeps_its_producers_headers_and_drops_the_relays() -> None:
    relay = InMemoryRelay(StubMsgFlash({"send_message": UNAVAILABLE}))
    transit = {DEFERRALS_HEADER: 4, ATTEMPTS_HEADER: 4, RECONCILE_HEADER: 1.0, "x-death": []}
    transit[RETRY_TIER_HEADER] = "msgflash.retry.1h"

    await relay.deliver(send_text(), headers={"tenant": "acme", **transit})

    (letter,) = relay.publisher.dead_letters
    assert letter.original.headers == {"tenant": "acme"}
    assert letter.original.body == send_text()


async def test_a_publish_the_broker_does_not_confirm_leaves_the_delivery_unacked() -> None:
    relay = InMemoryRelay(StubMsgFlash())
    relay.publisher.broker_down = True

    await relay.deliver(send_text())

    # Stored before publishing: the redelivery republishes instead of sending again.
    assert await relay.effects() == Effects(calls=("send_message",), acked=False)


async def test_an_ack_on_a_closed_channel_is_not_sent() -> None:
    relay = InMemoryRelay(StubMsgFlash())
    relay.channel.is_closed = True

    await relay.deliver(send_text())

    assert relay.channel.frames == []
