"""What an accepted or refused send means beyond the schema: destinations, references,
Business-only buttons, templates, safety and outbound usage (§6, §7, §14)."""

from __future__ import annotations

from typing import Any

import pytest

from service.providers.msgflash.sandbox.seed import (
    CONTACT_ANA,
    INSTANCE_MAIN,
    INSTANCE_NEW,
    INSTANCE_WARMING,
    TEMPLATE_PROMO,
    TEMPLATE_WELCOME,
    SeedData,
    SeedInstance,
    SeedTemplate,
)
from tests.providers.msgflash.sandbox.conftest import Api, ApiFactory

TO = "+33612345678"
UNKNOWN = "00000000-0000-4000-8000-00000000ffff"
SEND = "/api/v1/messages/send"


def _text(instance: str = INSTANCE_MAIN, **fields: Any) -> dict[str, Any]:
    return {"instanceId": instance, "to": TO, "type": "text", "text": "Hello", **fields}


@pytest.mark.parametrize("to", ["0612345678", "33612345678", "+33 6 12 34 56 78", "+0612345678"])
async def test_a_phone_number_that_is_not_e164_is_an_invalid_destination(api: Api, to: str) -> None:
    status, body = await api.post(SEND, _text(to=to))
    assert (status, body["error"]["code"]) == (422, "INVALID_DESTINATION")


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"instanceId": UNKNOWN}, "Instance"),
        ({"contactId": UNKNOWN}, "Contact"),
        ({"type": "contact", "contactId": UNKNOWN}, "Contact"),
        ({"type": None, "text": None, "templateId": UNKNOWN}, "Template"),
    ],
)
async def test_references_to_missing_records_are_not_found(
    api: Api, fields: dict[str, Any], what: str
) -> None:
    body = {k: v for k, v in {**_text(), **fields}.items() if v is not None}
    status, answer = await api.post(SEND, body)
    assert status == 404
    assert answer["error"] == {"code": "NOT_FOUND", "message": f"{what} not found"}


async def test_buttons_need_a_business_instance(api: Api) -> None:
    buttons = {
        "type": "buttons",
        "title": "T",
        "description": "D",
        "buttons": [{"title": "reply", "displayText": "Yes", "id": "y"}],
    }
    body = {"instanceId": INSTANCE_WARMING, "to": TO, **buttons}
    status, answer = await api.post(SEND, body)
    assert (status, answer["error"]["code"]) == (403, "UNSUPPORTED_FEATURE")


async def test_a_stable_instance_allows_without_warnings(api: Api) -> None:
    _, body = await api.post(SEND, _text(INSTANCE_MAIN))
    assert body["data"]["warnings"] == []
    assert body["data"]["safety"]["decision"] == "allow"
    assert body["data"]["safety"]["state"] == "stable" and body["data"]["safety"]["score"] == 72


@pytest.mark.parametrize(
    ("instance", "state"), [(INSTANCE_WARMING, "warming"), (INSTANCE_NEW, "new")]
)
async def test_a_warming_or_new_instance_warns_but_still_sends(
    api: Api, instance: str, state: str
) -> None:
    status, body = await api.post(SEND, _text(instance))
    assert status == 201
    assert body["data"]["warnings"]
    assert body["data"]["safety"]["decision"] == "warn"
    assert body["data"]["safety"]["state"] == state


async def test_the_send_response_is_the_full_message_object(api: Api) -> None:
    _, body = await api.post(SEND, _text())
    expected = {
        "id", "userId", "instanceId", "contactId", "campaignId", "direction", "type", "from",
        "to", "body", "mediaUrl", "status", "error", "meta", "providerMessageId", "createdAt",
        "updatedAt", "warnings", "safety",
    }  # fmt: skip
    assert set(body["data"]) == expected
    assert body["data"]["body"] == "Hello" and body["data"]["direction"] == "outbound"
    assert body["data"]["createdAt"].endswith("Z")


async def test_a_template_send_renders_flat_variables_as_custom(api: Api) -> None:
    status, body = await api.post(
        SEND,
        {"instanceId": INSTANCE_MAIN, "to": TO, "templateId": TEMPLATE_WELCOME,
         "variables": {"firstName": "Ana"}},
    )  # fmt: skip
    assert status == 201, body
    assert body["data"]["body"] == "Hello Ana, welcome to main!"
    assert body["data"]["meta"]["templateId"] == TEMPLATE_WELCOME


async def test_a_template_takes_its_type_media_and_contact_context(api: Api) -> None:
    status, body = await api.post(
        SEND,
        {"instanceId": INSTANCE_MAIN, "to": TO, "templateId": TEMPLATE_PROMO,
         "contactId": CONTACT_ANA, "variables": {"offer": "10% off"}},
    )  # fmt: skip
    assert status == 201, body
    data = body["data"]
    assert (data["type"], data["mediaUrl"]) == ("image", "https://example.com/promo.png")
    assert data["body"] == "Hi Ana, 10% off" and data["contactId"] == CONTACT_ANA


@pytest.mark.parametrize(
    ("variables", "missing"),
    [
        ({}, ["custom.firstName"]),
        ({"custom": {"firstName": "Ana"}}, ["custom.firstName"]),  # nested: taken literally
    ],
)
async def test_unresolved_template_variables_refuse_the_send(
    api: Api, variables: dict[str, Any], missing: list[str]
) -> None:
    status, body = await api.post(
        SEND,
        {"instanceId": INSTANCE_MAIN, "to": TO, "templateId": TEMPLATE_WELCOME,
         "variables": variables},
    )  # fmt: skip
    assert (status, body["error"]["code"]) == (400, "TEMPLATE_VARIABLES_MISSING")
    assert [detail["field"] for detail in body["error"]["details"]] == missing


async def test_contact_variables_without_a_contact_are_missing(api: Api) -> None:
    body = {"instanceId": INSTANCE_MAIN, "to": TO, "templateId": TEMPLATE_PROMO,
            "variables": {"offer": "x"}}  # fmt: skip
    status, answer = await api.post(SEND, body)
    assert status == 400 and "contact.firstName" in answer["error"]["message"]


async def test_a_broken_template_is_refused_at_send(make_api: ApiFactory) -> None:
    broken = "00000000-0000-4000-8000-0000000000b9"
    seed = SeedData(
        instances=(SeedInstance(id=INSTANCE_MAIN, name="main"),),
        templates=(SeedTemplate(id=broken, name="tether", body="Hi {{firstName}}"),),
    )
    api = await make_api(seed=seed)
    body = {"instanceId": INSTANCE_MAIN, "to": TO, "templateId": broken}
    status, answer = await api.post(SEND, body)
    assert (status, answer["error"]["code"]) == (400, "TEMPLATE_INVALID")


async def test_only_accepted_sends_count_toward_outbound_usage(api: Api) -> None:
    await api.post(SEND, _text())
    await api.post(SEND, _text(to="0612"))  # 422
    await api.post(SEND, _text(text=""))  # 400
    await api.post(SEND, _text(instanceId=UNKNOWN))  # 404
    usage = await api.ok("GET", "/_sandbox/usage")
    assert usage["usage"]["messagesCount"] == 1


async def test_a_voice_note_is_refused_when_the_plan_lacks_the_feature(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/features", {"voiceNotes": False})
    body = {"instanceId": INSTANCE_MAIN, "to": TO, "type": "voice_note",
            "mediaUrl": "https://example.com/a.ogg"}  # fmt: skip
    status, answer = await api.post(SEND, body)
    assert (status, answer["error"]["code"]) == (403, "FEATURE_NOT_AVAILABLE_ON_PLAN")
