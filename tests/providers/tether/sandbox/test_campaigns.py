"""Campaign creation (C1-C3, R6, R7): validation, the campaign object, ids, and the list."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.providers.tether.sandbox.conftest import CAMPAIGN, Api, ApiFactory

HEX24 = re.compile(r"^[0-9a-f]{24}$")


async def test_create_answers_the_campaign_object(api: Api) -> None:
    status, body = await api.call("POST", "/api/campaigns", CAMPAIGN)
    assert status == 200 and (body["success"], body["message"]) == (True, "Campaign created")
    data = body["data"]
    assert HEX24.match(data["_id"]) and HEX24.match(data["organizationId"])
    assert (data["status"], data["scheduleDate"]) == ("scheduled", "2030-05-20T15:00:00.000Z")
    assert data["stats"] == {"total": 2, "sent": 0, "failed": 0, "successRate": "0%"}
    assert data["createdAt"].endswith("Z") and data["failedDetails"] == []
    listed = (await api.ok("GET", "/api/campaigns"))["data"]
    assert [c["_id"] for c in listed] == [data["_id"]]
    assert (await api.ok("GET", f"/api/campaigns/{data['_id']}"))["data"] == data


async def test_201_is_a_setting(make_api: ApiFactory) -> None:
    api = await make_api(create_status=201)
    assert (await api.call("POST", "/api/campaigns", CAMPAIGN))[0] == 201


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"name": ""}, "Missing required field: name"),
        ({"message": None}, "message must be of type str"),
        ({"newContacts": [{"firstName": "J"}]}, "newContacts[0].phoneNumber"),
        ({"newContacts": [{"phoneNumber": "0612345678"}]}, "E.164"),
        ({"selectedExistingContacts": [{"_id": "123"}]}, "24-hex"),
        ({"newContacts": [], "selectedExistingContacts": []}, "at least one contact"),
        ({"scheduleDate": "2030-05-20T15:00:00"}, "UTC offset"),
        ({"isAutopilot": "no"}, "isAutopilot must be of type bool"),
    ],
)
async def test_invalid_bodies_are_400_and_create_nothing(
    api: Api, change: dict[str, Any], says: str
) -> None:
    status, body = await api.call("POST", "/api/campaigns", {**CAMPAIGN, **change})
    assert status == 400 and says in body["error"]["message"]
    assert body["error"]["code"] == "invalid_request"
    assert (await api.ok("GET", "/api/campaigns"))["data"] == []


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("string", {"error": "Missing required field: name"}),
        (
            "nested",
            {"error": {"code": "invalid_request", "message": "Missing required field: name"}},
        ),
        ("flat", {"message": "Missing required field: name", "code": "invalid_request"}),
    ],
)
async def test_each_error_shape_is_a_setting(
    make_api: ApiFactory, shape: str, expected: dict[str, Any]
) -> None:
    api = await make_api(error_shape=shape)
    assert await api.call("POST", "/api/campaigns", {**CAMPAIGN, "name": ""}) == (400, expected)


async def test_the_error_shape_can_be_switched_at_run_time(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/error-shape", {"shape": "flat"})
    _, body = await api.call("GET", "/api/campaigns/" + "0" * 24)
    assert body == {"message": "Campaign not found", "code": "not_found"}


async def test_a_missing_schedule_date_is_now_or_refused_as_set(make_api: ApiFactory) -> None:
    unscheduled = {k: v for k, v in CAMPAIGN.items() if k != "scheduleDate"}
    api = await make_api()
    data = (await api.ok("POST", "/api/campaigns", unscheduled))["data"]
    assert data["scheduleDate"] == data["createdAt"]
    refusing = await make_api(missing_schedule="reject")
    status, body = await refusing.call("POST", "/api/campaigns", unscheduled)
    assert status == 400 and body["error"]["message"] == "Missing required field: scheduleDate"
    assert (await refusing.ok("GET", "/api/campaigns"))["data"] == []


@pytest.mark.parametrize(
    ("shape", "listed"),
    [
        ("data", lambda body: body["data"]),
        ("campaigns", lambda body: body["campaigns"]),
        ("bare", lambda body: body),
    ],
)
async def test_the_list_shape_is_a_setting(
    make_api: ApiFactory, shape: str, listed: Callable[[Any], list[dict[str, Any]]]
) -> None:
    api = await make_api(list_shape=shape)
    created = (await api.ok("POST", "/api/campaigns", CAMPAIGN))["data"]
    assert listed(await api.ok("GET", "/api/campaigns")) == [created]


async def test_a_loose_phone_rule_takes_typed_numbers_and_stores_them_as_e164(
    make_api: ApiFactory,
) -> None:
    typed = {**CAMPAIGN, "newContacts": [{"firstName": "Jamie", "phoneNumber": "1 (415) 555-0133"}]}
    strict = await make_api()
    status, body = await strict.call("POST", "/api/campaigns", typed)
    assert status == 400 and "must be an E.164 phone number" in body["error"]["message"]
    loose = await make_api(phone_rule="loose")
    data = (await loose.ok("POST", "/api/campaigns", typed))["data"]
    assert data["newContacts"] == [{"firstName": "Jamie", "phoneNumber": "+14155550133"}]
    national = {**CAMPAIGN, "newContacts": [{"firstName": "J", "phoneNumber": "0612345678"}]}
    status, body = await loose.call("POST", "/api/campaigns", national)
    assert status == 400 and "with its country code" in body["error"]["message"]
