"""``tether.campaign.create``: Tether's own field names, its ids and phones, and its events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.contract.commands import CommandType, RawCommand, parse_command
from service.contract.errors import INVALID_EVENT, ErrorInfo, InvalidCommand
from service.contract.events import decode_event, failure_event
from service.contract.tether import TetherCampaignData
from service.contract.tether_events import CreatedCampaign, tether_campaign_created_event

EXISTING_ID = "665f1a0c0e0a4b001a2c9f01"
DATA: dict[str, Any] = {
    "name": "Q2 Lead Gen",
    "message": "Hi {{firstName}}, are you still interested?",
    "newContacts": [{"firstName": "Jamie", "phoneNumber": "+14155550133"}],
    "selectedExistingContacts": [{"_id": EXISTING_ID, "firstName": "Casey"}],
    "scheduleDate": "2026-05-20T15:00:00.000Z",
}


def envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "c-1",
        "source": "/crm",
        "type": "tether.campaign.create",
        "data": data,
    }


def parse(data: dict[str, Any]) -> TetherCampaignData:
    raw = RawCommand(body=json.dumps(envelope(data)).encode())
    command = parse_command(raw, max_bytes=64 * 1024)
    assert command.type is CommandType.TETHER_CREATE_CAMPAIGN
    assert isinstance(command.data, TetherCampaignData)
    return command.data


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidCommand) as caught:
        parse(data)
    assert caught.value.code == INVALID_EVENT
    return {p.field: p.message for p in caught.value.details}


def test_the_fact_sheet_example_parses_with_the_documented_defaults() -> None:
    data = parse(DATA)
    assert data.selected_existing_contacts[0].id == EXISTING_ID
    assert (data.type, data.is_autopilot, data.quota) == ("sms", False, "check")
    assert data.recipient_count == 2


def test_a_command_without_any_recipient_is_invalid_and_says_where_to_add_one() -> None:
    found = problems({"name": "x", "message": "y"})
    assert "newContacts" in found["data.newContacts"]


def test_a_phone_that_is_not_e164_names_the_contact_at_fault() -> None:
    found = problems({**DATA, "newContacts": [{"firstName": "J", "phoneNumber": "0612345678"}]})
    assert "E.164" in found["data.newContacts[0].phoneNumber"]


def test_an_existing_contact_id_must_be_24_hex() -> None:
    found = problems({**DATA, "selectedExistingContacts": [{"_id": "not-hex"}]})
    assert "24 hexadecimal" in found["data.selectedExistingContacts[0]._id"]


def test_name_and_message_are_required_and_the_quota_policy_is_one_of_three() -> None:
    found = problems({"newContacts": DATA["newContacts"], "quota": "later"})
    assert set(found) == {"data.name", "data.message", "data.quota"}


def test_a_schedule_date_without_offset_is_refused_rather_than_guessed() -> None:
    assert (
        "UTC offset"
        in problems({**DATA, "scheduleDate": "2026-05-20T15:00:00"})["data.scheduleDate"]
    )


def test_a_failed_tether_command_answers_tether_campaign_failed() -> None:
    identity = parse_command(
        RawCommand(body=json.dumps(envelope(DATA)).encode()), max_bytes=65536
    ).identity
    event = failure_event(identity, ErrorInfo("TETHER_AUTH_FAILED", "refused"), attempts=1)
    assert (event.type, event.routing_key) == ("tether.campaign.failed", "tether.campaign.failed")


def test_a_split_campaign_lists_every_segment_and_totals_the_recipients() -> None:
    command = parse_command(RawCommand(body=json.dumps(envelope(DATA)).encode()), max_bytes=65536)
    created = (
        CreatedCampaign("a" * 24, "scheduled", "2026-05-20T15:00:00.000Z", 1),
        CreatedCampaign("b" * 24, "scheduled", "2026-05-21T15:00:00.000Z", 1),
    )
    event = tether_campaign_created_event(command, created, attempts=3)
    assert event.routing_key == "tether.campaign.created"
    data = decode_event(event.body)["data"]
    assert (data["campaignId"], data["recipients"], data["attempts"]) == ("a" * 24, 2, 3)
    assert [s["campaignId"] for s in data["segments"]] == ["a" * 24, "b" * 24]


def test_a_single_campaign_has_no_segments_field() -> None:
    command = parse_command(RawCommand(body=json.dumps(envelope(DATA)).encode()), max_bytes=65536)
    created = (CreatedCampaign("a" * 24, "scheduled", None, 2),)
    data = decode_event(tether_campaign_created_event(command, created, attempts=1).body)["data"]
    assert "segments" not in data and data["recipients"] == 2
