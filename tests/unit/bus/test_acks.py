"""The ack ledger: which frames a channel's acks become, checked against the broker's rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.bus.acks import AckFrame, AckLedger


class BrokerAcks:
    """RabbitMQ's rules for basic.ack on one channel: the tag must be outstanding, else the
    channel is closed with PRECONDITION_FAILED; ``multiple`` acks every outstanding tag up to it."""

    def __init__(self, delivered: int) -> None:
        self.outstanding = set(range(1, delivered + 1))

    def apply(self, frame: AckFrame) -> set[int]:
        assert frame.delivery_tag in self.outstanding, f"unknown delivery tag {frame}"
        if frame.multiple:
            covered = {tag for tag in self.outstanding if tag <= frame.delivery_tag}
        else:
            covered = {frame.delivery_tag}
        self.outstanding -= covered
        return covered


def test_a_run_of_consecutive_acks_is_one_multiple_frame() -> None:
    ledger = AckLedger()
    for tag in (3, 1, 2, 4):
        ledger.ack(tag)
    assert ledger.frames() == [AckFrame(4, multiple=True)]
    assert ledger.frames() == []


def test_a_single_ack_is_not_sent_as_multiple() -> None:
    ledger = AckLedger()
    ledger.ack(1)
    assert ledger.frames() == [AckFrame(1, multiple=False)]


def test_acks_above_a_delivery_in_progress_go_alone_and_at_once() -> None:
    ledger = AckLedger()
    for tag in (1, 2, 4, 5):  # 3 is still being processed
        ledger.ack(tag)
    assert ledger.frames() == [
        AckFrame(2, multiple=True),
        AckFrame(4, multiple=False),
        AckFrame(5, multiple=False),
    ]
    ledger.ack(3)
    ledger.ack(6)
    # 4 and 5 are acked already: the run 3..6 needs 3 and 6, one multiple frame up to 6.
    assert ledger.frames() == [AckFrame(6, multiple=True)]
    assert ledger.floor == 6


def test_a_delivery_left_unacked_is_never_covered_by_a_later_multiple_ack() -> None:
    ledger = AckLedger()
    ledger.ack(1)
    ledger.settle(2)  # done with it, never acked
    for tag in (3, 4, 5):
        ledger.ack(tag)
    frames = ledger.frames()
    assert frames == [AckFrame(tag, multiple=False) for tag in (1, 3, 4, 5)]
    assert ledger.acked == {}  # nothing kept once acks go alone


def test_settling_an_acked_delivery_changes_nothing() -> None:
    ledger = AckLedger()
    for tag in (1, 2):
        ledger.ack(tag)
        ledger.settle(tag)
    assert ledger.frames() == [AckFrame(2, multiple=True)]
    ledger.settle(1)  # below the floor by now
    ledger.ack(3)
    assert ledger.frames() == [AckFrame(3, multiple=False)]


def test_a_second_ack_of_a_tag_sends_no_second_frame() -> None:
    ledger = AckLedger()
    ledger.ack(2)  # above 1, still in progress: goes alone
    assert ledger.frames() == [AckFrame(2, multiple=False)]
    ledger.ack(2)
    ledger.ack(1)
    ledger.ack(1)
    assert ledger.frames() == [AckFrame(1, multiple=False)]
    ledger.ack(1)
    assert ledger.frames() == []


@settings(max_examples=300, deadline=None)
@given(data=st.data(), delivered=st.integers(min_value=1, max_value=40))
def test_any_order_of_acks_and_flushes_is_accepted_by_the_broker(
    data: st.DataObject, delivered: int
) -> None:
    order = data.draw(st.permutations(range(1, delivered + 1)), label="completion order")
    left_unacked = data.draw(
        st.sets(st.sampled_from(order), max_size=3) if order else st.just(set()),
        label="left unacked",
    )
    flush_after = data.draw(st.sets(st.integers(0, delivered)), label="flush points")
    ledger, broker, acked_at_broker = AckLedger(), BrokerAcks(delivered), set[int]()
    for index, tag in enumerate(order):
        if tag not in left_unacked:
            ledger.ack(tag)
        ledger.settle(tag)  # as the pipeline does once it is done with a delivery
        if index in flush_after:
            for frame in ledger.frames():
                acked_at_broker |= broker.apply(frame)
            # Only what the pipeline acked so far may be acked at the broker.
            assert acked_at_broker <= set(order[: index + 1]) - left_unacked
    for frame in ledger.frames():
        acked_at_broker |= broker.apply(frame)
    assert acked_at_broker == set(order) - left_unacked
    assert broker.outstanding == left_unacked
