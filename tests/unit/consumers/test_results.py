"""Stored outcomes round-trip, so a redelivery republishes exactly the same events."""

from __future__ import annotations

from consumers.results import decode_events, encode_result, result_failed
from service.contract.events import OutgoingEvent


def test_events_round_trip_with_their_ids() -> None:
    events = (
        OutgoingEvent(
            id="e1",
            type="msgflash.message.sent",
            routing_key="message.sent",
            body=b'{"a":"\xc3\xa9"}',
        ),
        OutgoingEvent(
            id="e2", type="msgflash.safety.warning", routing_key="safety.warning", body=b"{}"
        ),
    )
    stored = encode_result(events, succeeded=True)
    assert decode_events(stored) == events
    assert not result_failed(stored)


def test_failures_and_unreadable_records_count_as_failed() -> None:
    assert result_failed(encode_result((), succeeded=False))
    assert result_failed(b"not json")
    assert result_failed(None)
    assert decode_events(None) == ()
