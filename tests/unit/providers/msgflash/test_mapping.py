"""Mapping command data to MsgFlash request bodies (fact sheet §6 and §8)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from service.contract.commands import (
    Command,
    CreateCampaignData,
    RawCommand,
    ScheduleMessageData,
    SendMessageData,
    parse_command,
)
from service.providers.msgflash.mapping import to_campaign_payload, to_message_payload
from service.providers.msgflash.sandbox.validation import (
    validate_campaign_request,
    validate_message_request,
)
from tests.unit import strategies as s

INSTANCE = "3f2b1c9e-8d4a-4e6b-9c1d-2a3b4c5d6e7f"
TEMPLATE = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
TO = "+33612345678"


def parse(envelope: dict[str, Any]) -> Command:
    return parse_command(RawCommand(body=json.dumps(envelope).encode()), max_bytes=1 << 20)


def send_payload(message: dict[str, Any] | None = None, **data: Any) -> dict[str, Any]:
    content = {"message": message} if message is not None else {}
    command = parse(s.envelope(s.SEND, {"to": TO, **content, **data}))
    assert isinstance(command.data, SendMessageData)
    return to_message_payload(command.data, INSTANCE)


def campaign_payload(message: dict[str, Any] | None = None, **data: Any) -> dict[str, Any]:
    content = {"message": message} if message is not None else {}
    base = {"name": "Promo", "schedule": "2026-12-01T09:00:00+01:00", "recipients": {"type": "all"}}
    command = parse(s.envelope(s.CAMPAIGN, {**base, **content, **data}))
    assert isinstance(command.data, CreateCampaignData)
    return to_campaign_payload(command.data, INSTANCE)


# --- messages -----------------------------------------------------------------------------
def test_direct_text_goes_in_text_not_body() -> None:
    assert send_payload({"type": "text", "text": "Hello"}) == {
        "instanceId": INSTANCE,
        "to": TO,
        "type": "text",
        "text": "Hello",
    }


@pytest.mark.parametrize("kind", ["image", "video", "document"])
def test_a_caption_travels_as_text(kind: str) -> None:
    message = {"type": kind, "mediaUrl": "https://cdn.example.com/a", "caption": "Look"}
    payload = send_payload(message)
    assert payload["type"] == kind
    assert payload["mediaUrl"] == "https://cdn.example.com/a"
    assert payload["text"] == "Look"
    assert "caption" not in payload


def test_a_media_message_without_caption_sends_no_text_key() -> None:
    payload = send_payload({"type": "image", "mediaUrl": "https://cdn.example.com/a"})
    assert set(payload) == {"instanceId", "to", "type", "mediaUrl"}


@pytest.mark.parametrize("kind", ["audio", "voice_note"])
def test_audio_and_voice_notes_carry_only_the_media_url(kind: str) -> None:
    payload = send_payload({"type": kind, "mediaUrl": "https://cdn.example.com/a.ogg"})
    assert payload == {
        "instanceId": INSTANCE,
        "to": TO,
        "type": kind,
        "mediaUrl": "https://cdn.example.com/a.ogg",
    }


def test_location_name_and_address_use_msgflash_names() -> None:
    message = {
        "type": "location",
        "latitude": 48.8584,
        "longitude": 2.2945,
        "name": "Tour Eiffel",
        "address": "Champ de Mars",
    }
    assert send_payload(message) == {
        "instanceId": INSTANCE,
        "to": TO,
        "type": "location",
        "latitude": 48.8584,
        "longitude": 2.2945,
        "locationName": "Tour Eiffel",
        "locationAddress": "Champ de Mars",
    }


def test_a_location_without_name_sends_no_null_names() -> None:
    payload = send_payload({"type": "location", "latitude": 0, "longitude": 0})
    assert "locationName" not in payload and "locationAddress" not in payload


def test_a_contact_card_sends_its_contact_id() -> None:
    payload = send_payload({"type": "contact", "contactId": TEMPLATE})
    assert payload["contactId"] == TEMPLATE


def test_buttons_carry_their_kind_under_title_with_their_kind_fields() -> None:
    message = {
        "type": "buttons",
        "title": "Your order",
        "description": "Pay or ask",
        "footer": "Thanks",
        "buttons": [
            {"kind": "url", "displayText": "Track", "url": "https://shop.example.com/o/1"},
            {
                "kind": "pix",
                "displayText": "Pay",
                "currency": "BRL",
                "name": "Loja",
                "keyType": "email",
                "key": "pay@loja.com.br",
            },
        ],
    }
    assert send_payload(message) == {
        "instanceId": INSTANCE,
        "to": TO,
        "type": "buttons",
        "title": "Your order",
        "description": "Pay or ask",
        "footer": "Thanks",
        "buttons": [
            {"title": "url", "displayText": "Track", "url": "https://shop.example.com/o/1"},
            {
                "title": "pix",
                "displayText": "Pay",
                "currency": "BRL",
                "name": "Loja",
                "keyType": "email",
                "key": "pay@loja.com.br",
            },
        ],
    }


@pytest.mark.parametrize(
    ("button", "mapped"),
    [
        (
            {"kind": "reply", "displayText": "Yes", "id": "yes"},
            {"title": "reply", "displayText": "Yes", "id": "yes"},
        ),
        (
            {"kind": "copy", "displayText": "Code", "copyCode": "XMAS"},
            {"title": "copy", "displayText": "Code", "copyCode": "XMAS"},
        ),
        (
            {"kind": "call", "displayText": "Call", "phoneNumber": TO},
            {"title": "call", "displayText": "Call", "phoneNumber": TO},
        ),
    ],
)
def test_each_button_kind_maps_its_own_fields(
    button: dict[str, Any], mapped: dict[str, Any]
) -> None:
    message = {"type": "buttons", "title": "T", "description": "D", "buttons": [button]}
    payload = send_payload(message)
    assert payload["buttons"] == [mapped]
    assert "footer" not in payload


def test_template_variables_are_sent_flat_never_under_custom() -> None:
    template = {"id": TEMPLATE, "variables": {"firstName": "Ana", "orderTotal": 42.5}}
    assert send_payload(template=template) == {
        "instanceId": INSTANCE,
        "to": TO,
        "templateId": TEMPLATE,
        "variables": {"firstName": "Ana", "orderTotal": 42.5},
    }


def test_a_template_without_variables_sends_no_variables_key() -> None:
    assert "variables" not in send_payload(template={"id": TEMPLATE})


def test_schedule_adds_scheduled_at_in_utc_with_milliseconds_and_z() -> None:
    data = {"to": TO, "message": {"type": "text", "text": "Hi"}}
    data["scheduledAt"] = "2026-12-01T09:00:00.123456+01:00"
    command = parse(s.envelope(s.SCHEDULE, data))
    assert isinstance(command.data, ScheduleMessageData)
    payload = to_message_payload(command.data, INSTANCE)
    assert payload["scheduledAt"] == "2026-12-01T08:00:00.123Z"


def test_send_never_carries_scheduled_at() -> None:
    assert "scheduledAt" not in send_payload({"type": "text", "text": "Hi"})


def test_the_resolved_instance_id_replaces_the_instance_name() -> None:
    payload = send_payload({"type": "text", "text": "Hi"}, instance="main")
    assert payload["instanceId"] == INSTANCE
    assert "instance" not in payload


# --- campaigns ----------------------------------------------------------------------------
def test_campaign_text_goes_in_body_not_text() -> None:
    assert campaign_payload({"type": "text", "text": "Hello"}) == {
        "instanceId": INSTANCE,
        "name": "Promo",
        "schedule": "2026-12-01T08:00:00.000Z",
        "repeat": "none",
        "recipients": {"type": "all"},
        "type": "text",
        "body": "Hello",
    }


def test_campaign_captions_go_in_body() -> None:
    message = {"type": "video", "mediaUrl": "https://cdn.example.com/v.mp4", "caption": "Watch"}
    payload = campaign_payload(message)
    assert payload["body"] == "Watch"
    assert "text" not in payload


def test_campaign_repeat_noe_is_sent_as_none() -> None:
    assert campaign_payload({"type": "text", "text": "x"}, repeat="noe")["repeat"] == "none"


@pytest.mark.parametrize(
    "recipients",
    [
        {"type": "all"},
        {"type": "tags", "value": ["vip", "fr"]},
        {"type": "explicit", "value": [TEMPLATE, INSTANCE]},
        {"type": "group", "groupId": TEMPLATE},
    ],
)
def test_campaign_recipients_are_sent_as_msgflash_expects(recipients: dict[str, Any]) -> None:
    payload = campaign_payload({"type": "text", "text": "x"}, recipients=recipients)
    assert payload["recipients"] == recipients


def test_campaign_templates_send_global_variables_flat() -> None:
    payload = campaign_payload(template={"id": TEMPLATE, "variables": {"promo": "XMAS"}})
    assert payload["templateId"] == TEMPLATE
    assert payload["variables"] == {"promo": "XMAS"}
    assert "type" not in payload


def test_campaign_buttons_map_like_message_buttons() -> None:
    message = {
        "type": "buttons",
        "title": "T",
        "description": "D",
        "buttons": [{"kind": "reply", "displayText": "Stop", "id": "stop"}],
    }
    payload = campaign_payload(message)
    assert payload["buttons"] == [{"title": "reply", "displayText": "Stop", "id": "stop"}]


# --- properties ---------------------------------------------------------------------------
def _nulls(value: object) -> bool:
    if isinstance(value, dict):
        return any(v is None or _nulls(v) for v in value.values())
    if isinstance(value, list):
        return any(_nulls(v) for v in value)
    return value is None


@s.PROPERTY_SETTINGS
@given(envelope=s.valid_command_of(s.SEND) | s.valid_command_of(s.SCHEDULE))
def test_every_mapped_message_passes_msgflash_validation(envelope: dict[str, Any]) -> None:
    command = parse(envelope)
    assert isinstance(command.data, ScheduleMessageData | SendMessageData)
    payload = to_message_payload(command.data, INSTANCE)

    schedule = isinstance(command.data, ScheduleMessageData)
    assert validate_message_request(payload, schedule=schedule) == []
    assert ("scheduledAt" in payload) is schedule
    assert "body" not in payload
    assert not _nulls(payload)
    json.dumps(payload, allow_nan=False)


@s.PROPERTY_SETTINGS
@given(envelope=s.valid_command_of(s.CAMPAIGN))
def test_every_mapped_campaign_passes_msgflash_validation(envelope: dict[str, Any]) -> None:
    command = parse(envelope)
    assert isinstance(command.data, CreateCampaignData)
    payload = to_campaign_payload(command.data, INSTANCE)

    assert validate_campaign_request(payload) == []
    assert payload["repeat"] in ("none", "daily", "weekly")
    assert "text" not in payload
    assert not _nulls(payload)
    json.dumps(payload, allow_nan=False)
