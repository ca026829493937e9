"""Campaign creation (C1-C3, R6, R7): validation, the campaign object, ids, and the list."""

from __future__ import annotations

import re
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
