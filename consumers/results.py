"""The stored outcome of a finished command: the events to republish on a redelivery."""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json, to_json

from service.contract.events import OutgoingEvent


def encode_result(events: tuple[OutgoingEvent, ...], *, succeeded: bool) -> bytes:
    return to_json(
        {
            "succeeded": succeeded,
            "events": [
                {"id": e.id, "type": e.type, "routing_key": e.routing_key, "body": e.body.decode()}
                for e in events
            ],
        }
    )


def result_failed(stored: bytes | None) -> bool:
    """True when the stored outcome is a failure (or unreadable, which is treated the same)."""
    if not stored:
        return True
    try:
        return not from_json(stored).get("succeeded", False)
    except ValueError:
        return True


def decode_events(stored: bytes | None) -> tuple[OutgoingEvent, ...]:
    if not stored:
        return ()
    document: dict[str, Any] = from_json(stored)
    return tuple(
        OutgoingEvent(
            id=item["id"],
            type=item["type"],
            routing_key=item["routing_key"],
            body=item["body"].encode(),
        )
        for item in document.get("events", [])
    )
