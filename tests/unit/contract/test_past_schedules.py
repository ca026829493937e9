"""A schedule already past when a command arrives is refused: MsgFlash would send it at once,
and Tether does not say what it would do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.contract.commands import (
    PAST_TOLERANCE,
    Command,
    CommandType,
    RawCommand,
    parse_command,
)
from service.contract.errors import INVALID_EVENT, InvalidCommand

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TEXT = {"type": "text", "text": "Hello"}


def envelope(type_: CommandType, data: dict[str, Any]) -> RawCommand:
    body = {"specversion": "1.0", "id": "c-1", "source": "/tests", "type": type_, "data": data}
    return RawCommand(json.dumps(body).encode(), "application/cloudevents+json")


def schedule(at: datetime) -> RawCommand:
    data = {"to": "+33612345678", "scheduledAt": at.isoformat(), "message": TEXT}
    return envelope(CommandType.SCHEDULE_MESSAGE, data)


def campaign(at: datetime) -> RawCommand:
    data = {"name": "Promo", "schedule": at.isoformat(), "recipients": {"type": "all"}}
    return envelope(CommandType.CREATE_CAMPAIGN, {**data, "message": TEXT})


def tether_campaign(at: datetime | None) -> RawCommand:
    contact = {"firstName": "Jamie", "phoneNumber": "+14155550133"}
    data: dict[str, Any] = {"name": "Q2", "message": "Hi", "newContacts": [contact]}
    if at is not None:
        data["scheduleDate"] = at.isoformat()
    return envelope(CommandType.TETHER_CREATE_CAMPAIGN, data)


def parse(raw: RawCommand, now: datetime | None = NOW) -> Command:
    return parse_command(raw, max_bytes=65536, now=now)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (schedule(NOW - timedelta(hours=3)), "data.scheduledAt"),
        (campaign(NOW - timedelta(days=1)), "data.schedule"),
        (tether_campaign(NOW - timedelta(minutes=5)), "data.scheduleDate"),
    ],
)
def test_a_past_schedule_is_invalid_naming_its_field_and_date(raw: RawCommand, field: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse(raw)
    assert caught.value.code == INVALID_EVENT
    (problem,) = caught.value.details
    assert problem.field == field
    assert "is in the past" in problem.message
    assert "Z is in the past" in caught.value.message


def test_the_message_says_msgflash_would_send_at_once_and_what_to_do() -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse(schedule(datetime(2026, 5, 1, 8, tzinfo=UTC)))
    (problem,) = caught.value.details
    assert problem.message == (
        "2026-05-01T08:00:00.000Z is in the past: MsgFlash would send it at once; give a "
        "future time, or publish msgflash.message.send to send now"
    )


def test_a_past_tether_date_says_what_to_do_instead() -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse(tether_campaign(datetime(2026, 5, 1, 8, tzinfo=UTC)))
    (problem,) = caught.value.details
    assert problem.message == (
        "2026-05-01T08:00:00.000Z is in the past: Tether does not document what it does with a "
        "past date; give a future time, or leave the date out to start now"
    )


def test_a_tether_campaign_without_a_date_starts_now_and_passes() -> None:
    assert parse(tether_campaign(None)).type is CommandType.TETHER_CREATE_CAMPAIGN


def test_a_schedule_within_the_clock_tolerance_is_accepted() -> None:
    command = parse(schedule(NOW - PAST_TOLERANCE + timedelta(seconds=1)))
    assert command.type is CommandType.SCHEDULE_MESSAGE


def test_a_future_schedule_is_accepted() -> None:
    assert parse(campaign(NOW + timedelta(minutes=10))).is_campaign


def test_without_an_arrival_time_a_past_schedule_passes_for_redeliveries() -> None:
    assert parse(schedule(NOW - timedelta(days=30)), now=None).id == "c-1"


def test_a_send_has_no_schedule_to_check() -> None:
    raw = envelope(CommandType.SEND_MESSAGE, {"to": "+33612345678", "message": TEXT})
    assert parse(raw).type is CommandType.SEND_MESSAGE
