"""``POST /api/v1/messages/send``: every type's rules (§6.1, §6.2), over HTTP.

Each invalid body must be refused with 400 VALIDATION_ERROR naming the field at fault.
"""

from __future__ import annotations

from typing import Any

import pytest

from service.providers.msgflash.sandbox.seed import CONTACT_ANA, INSTANCE_MAIN, TEMPLATE_WELCOME
from tests.providers.msgflash.sandbox.conftest import Api

TO = "+33612345678"
URL = "https://example.com/file.png"
REPLY = {"title": "reply", "displayText": "Yes", "id": "yes"}

VALID: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": "Hello"},
    "image": {"type": "image", "mediaUrl": URL, "text": "a caption"},
    "video": {"type": "video", "mediaUrl": URL},
    "audio": {"type": "audio", "mediaUrl": URL},
    "document": {"type": "document", "mediaUrl": URL, "text": "invoice.pdf"},
    "voice_note": {"type": "voice_note", "mediaUrl": URL},
    "location": {"type": "location", "latitude": 48.85, "longitude": 2.35, "locationName": "Paris"},
    "contact": {"type": "contact", "contactId": CONTACT_ANA},
    "buttons": {
        "type": "buttons",
        "title": "Order",
        "description": "Confirm?",
        "footer": "Shop",
        "buttons": [REPLY],
    },
}


def _send(content: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {"instanceId": INSTANCE_MAIN, "to": TO, **content, **envelope}


def _buttons(*buttons: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**VALID["buttons"], "buttons": list(buttons), **fields}


@pytest.mark.parametrize("kind", sorted(VALID))
async def test_each_message_type_is_accepted_with_its_required_fields(api: Api, kind: str) -> None:
    status, body = await api.post("/api/v1/messages/send", _send(VALID[kind]))
    assert status == 201, body
    assert body["data"]["type"] == kind and body["data"]["status"] == "queued"


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("text missing", {"type": "text"}, "text"),
    ("text empty", {"type": "text", "text": ""}, "text"),
    ("text too long", {"type": "text", "text": "x" * 4097}, "text"),
    ("body instead of text", {"type": "text", "body": "Hello"}, "text"),
    ("image without media", {"type": "image", "text": "caption"}, "mediaUrl"),
    ("video without media", {"type": "video"}, "mediaUrl"),
    ("audio without media", {"type": "audio"}, "mediaUrl"),
    ("document without media", {"type": "document"}, "mediaUrl"),
    ("voice note without media", {"type": "voice_note"}, "mediaUrl"),
    ("media url not a url", {"type": "image", "mediaUrl": "promo.png"}, "mediaUrl"),
    ("media url python cannot split", {"type": "image", "mediaUrl": "http://[b]/"}, "mediaUrl"),
    ("location without latitude", {"type": "location", "longitude": 2.3}, "latitude"),
    ("location without longitude", {"type": "location", "latitude": 48.8}, "longitude"),
    ("latitude as a string", {"type": "location", "latitude": "48.8", "longitude": 2}, "latitude"),
    ("latitude out of range", {"type": "location", "latitude": 91, "longitude": 2}, "latitude"),
    ("longitude out of range", {"type": "location", "latitude": 1, "longitude": -181}, "longitude"),
    ("contact without id", {"type": "contact"}, "contactId"),
    ("contact id not a uuid", {"type": "contact", "contactId": "ana"}, "contactId"),
    ("buttons without title", _buttons(REPLY, title=None), "title"),
    ("buttons without description", _buttons(REPLY, description=None), "description"),
    ("no buttons", _buttons(), "buttons"),
    ("three buttons", _buttons(REPLY, REPLY, REPLY), "buttons"),
    ("no display text", _buttons({"title": "reply", "id": "x"}), "buttons[0].displayText"),
    (
        "display text over 50",
        _buttons({**REPLY, "displayText": "x" * 51}),
        "buttons[0].displayText",
    ),
    ("reply without id", _buttons({"title": "reply", "displayText": "Y"}), "buttons[0].id"),
    ("copy without code", _buttons({"title": "copy", "displayText": "C"}), "buttons[0].copyCode"),
    ("url without url", _buttons({"title": "url", "displayText": "Go"}), "buttons[0].url"),
    ("call, no number", _buttons({"type": "call", "displayText": "C"}), "buttons[0].phoneNumber"),
    ("pix without key", _buttons({"title": "pix", "displayText": "P"}), "buttons[0].currency"),
    ("unknown kind", _buttons({"title": "vote", "displayText": "V"}), "buttons[0].title"),
    ("no kind", _buttons({"displayText": "V", "id": "v"}), "buttons[0].title"),
    ("conflicting kinds", _buttons({**REPLY, "type": "url", "url": URL}), "buttons[0].title"),
    ("unknown type", {"type": "sticker"}, "type"),
    ("neither type nor template", {"text": "Hello"}, "type"),
    ("both modes", {**VALID["text"], "templateId": TEMPLATE_WELCOME}, "templateId"),
    ("variables not an object", {**VALID["text"], "variables": ["a"]}, "variables"),
]


@pytest.mark.parametrize(
    ("content", "field"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID]
)
async def test_an_invalid_body_is_a_validation_error_naming_the_field(
    api: Api, content: dict[str, Any], field: str
) -> None:
    status, body = await api.post("/api/v1/messages/send", _send(content))
    assert status == 400, body
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert field in [detail["field"] for detail in body["error"]["details"]], body


async def test_body_instead_of_text_is_explained_in_the_message(api: Api) -> None:
    _, body = await api.post("/api/v1/messages/send", _send({"type": "text", "body": "Hi"}))
    (detail,) = body["error"]["details"]
    assert "'text', not 'body'" in detail["message"]


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        ({"instanceId": None}, "instanceId"),
        ({"instanceId": "main"}, "instanceId"),
        ({"instanceId": "+2250700000001"}, "instanceId"),
        ({"to": None}, "to"),
        ({"to": 33612345678}, "to"),
        ({"to": "hello"}, "to"),
        ({"to": ""}, "to"),
    ],
)
async def test_the_envelope_fields_are_validated(
    api: Api, envelope: dict[str, Any], field: str
) -> None:
    body = {
        key: value for key, value in _send(VALID["text"], **envelope).items() if value is not None
    }
    status, answer = await api.post("/api/v1/messages/send", body)
    assert status == 400
    assert [detail["field"] for detail in answer["error"]["details"]] == [field]


async def test_the_button_kind_may_travel_in_title_or_in_type(api: Api) -> None:
    by_title = _buttons({"title": "url", "displayText": "Open", "url": URL})
    by_type = _buttons({"type": "copy", "displayText": "Copy", "copyCode": "PROMO10"})
    for content in (by_title, by_type):
        status, body = await api.post("/api/v1/messages/send", _send(content))
        assert status == 201, body
    kinds = [b["title"] for b in body["data"]["meta"]["interactive"]["buttons"]]
    assert kinds == ["copy"]


async def test_every_button_kind_is_accepted_with_its_keys(api: Api) -> None:
    buttons = [
        {"title": "call", "displayText": "Call", "phoneNumber": "+33612345678"},
        {
            "title": "pix",
            "displayText": "Pay",
            "currency": "BRL",
            "name": "Shop",
            "keyType": "email",
            "key": "pay@example.com",
        },
    ]
    status, body = await api.post("/api/v1/messages/send", _send(_buttons(*buttons)))
    assert status == 201, body


async def test_unknown_fields_are_ignored(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/messages/send", _send(VALID["text"], priority="high", mediaUrl=URL)
    )
    assert status == 201, body
    assert body["data"]["body"] == "Hello" and body["data"]["mediaUrl"] is None
