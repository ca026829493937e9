"""``/api/v1/campaigns`` (§8) with warmup safety (§14)."""

from __future__ import annotations

from typing import Any

import pytest

from service.providers.msgflash.sandbox.seed import (
    CONTACT_ANA,
    CONTACT_BRUNO,
    GROUP_CUSTOMERS,
    INSTANCE_MAIN,
    INSTANCE_NEW,
    INSTANCE_WARMING,
    TEMPLATE_WELCOME,
    SeedContact,
    SeedData,
    SeedInstance,
)
from tests.providers.msgflash.sandbox.conftest import Api, ApiFactory

UNKNOWN = "00000000-0000-4000-8000-00000000ffff"
CAMPAIGNS = "/api/v1/campaigns"
REPLY = {"type": "reply", "displayText": "Yes", "id": "y"}


def _campaign(**fields: Any) -> dict[str, Any]:
    base = {
        "instanceId": INSTANCE_MAIN,
        "name": "spring",
        "schedule": "2026-12-01T08:00:00Z",
        "recipients": {"type": "all"},
        "type": "text",
        "body": "Hello",
    }
    return {key: value for key, value in {**base, **fields}.items() if value is not None}


@pytest.mark.parametrize(
    ("recipients", "total", "echo"),
    [
        ({"type": "all", "value": []}, 3, {"type": "all", "value": []}),
        ({"type": "tags", "value": ["vip", "br"]}, 2, {"type": "tags", "value": ["vip", "br"]}),
        (
            {"type": "explicit", "value": [CONTACT_ANA]},
            1,
            {"type": "explicit", "value": [CONTACT_ANA]},
        ),
        (
            {"type": "group", "groupId": GROUP_CUSTOMERS},
            2,
            {"type": "group", "groupId": GROUP_CUSTOMERS},
        ),
    ],
)
async def test_each_recipient_selector_is_accepted(
    api: Api, recipients: dict[str, Any], total: int, echo: dict[str, Any]
) -> None:
    status, body = await api.post(CAMPAIGNS, _campaign(recipients=recipients))
    assert status == 201, body
    campaign = body["data"]
    assert campaign["status"] == "scheduled" and campaign["recipients"] == echo
    assert campaign["safety"]["audience"]["totalRecipients"] == total
    assert campaign["stats"]["planned"] == 0 and campaign["repeat"] == "none"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"recipients": {"type": "tags", "value": []}}, "recipients.value"),
        ({"recipients": {"type": "explicit"}}, "recipients.value"),
        ({"recipients": {"type": "explicit", "value": ["ana"]}}, "recipients.value[0]"),
        ({"recipients": {"type": "group"}}, "recipients.groupId"),
        ({"recipients": {"type": "everyone"}}, "recipients.type"),
        ({"recipients": None}, "recipients"),
        ({"templateId": TEMPLATE_WELCOME}, "templateId"),  # both modes
        ({"type": None, "body": None}, "type"),  # neither mode: an empty campaign
        ({"body": None, "text": "Hello"}, "body"),  # campaigns take body, not text
        ({"type": "location"}, "type"),
        ({"type": "contact"}, "type"),
        ({"type": "image", "body": None}, "mediaUrl"),
        ({"repeat": "monthly"}, "repeat"),
        ({"schedule": None}, "schedule"),
        ({"name": None}, "name"),
        ({"type": "buttons", "title": "T", "description": "D", "buttons": [REPLY] * 3}, "buttons"),
    ],
)
async def test_an_invalid_campaign_is_a_validation_error_naming_the_field(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    status, body = await api.post(CAMPAIGNS, _campaign(**fields))
    assert status == 400, body
    assert field in [d["field"] for d in body["error"]["details"]], body


@pytest.mark.parametrize(
    ("given", "echoed"), [("noe", "none"), ("none", "none"), ("weekly", "weekly")]
)
async def test_repeat_accepts_the_noe_alias_and_answers_none(
    api: Api, given: str, echoed: str
) -> None:
    campaign = await api.ok("POST", CAMPAIGNS, _campaign(repeat=given))
    assert campaign["repeat"] == echoed


async def test_a_template_campaign_has_no_direct_content(api: Api) -> None:
    campaign = await api.ok(
        "POST", CAMPAIGNS, _campaign(type=None, body=None, templateId=TEMPLATE_WELCOME)
    )
    assert (campaign["templateId"], campaign["type"], campaign["body"]) == (
        TEMPLATE_WELCOME, None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"instanceId": UNKNOWN}, "Instance not found"),
        ({"type": None, "body": None, "templateId": UNKNOWN}, "Template not found"),
        ({"recipients": {"type": "group", "groupId": UNKNOWN}}, "Group not found"),
        ({"recipients": {"type": "explicit", "value": [UNKNOWN]}}, f"Contact not found: {UNKNOWN}"),
    ],
)
async def test_missing_references_are_not_found(
    api: Api, fields: dict[str, Any], message: str
) -> None:
    status, body = await api.post(CAMPAIGNS, _campaign(**fields))
    assert status == 404 and body["error"]["message"] == message


async def test_campaigns_are_gated_by_the_plan(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/features", {"campaigns": False})
    status, body = await api.post(CAMPAIGNS, _campaign())
    assert (status, body["error"]["code"]) == (403, "CAMPAIGNS_NOT_AVAILABLE_ON_PLAN")


async def test_buttons_campaigns_need_a_business_instance(api: Api) -> None:
    buttons = {
        "type": "buttons",
        "body": None,
        "title": "T",
        "description": "D",
        "buttons": [REPLY],
    }
    assert (await api.post(CAMPAIGNS, _campaign(**buttons)))[0] == 201
    status, body = await api.post(CAMPAIGNS, _campaign(instanceId=INSTANCE_WARMING, **buttons))
    assert (status, body["error"]["code"]) == (403, "UNSUPPORTED_FEATURE")


async def test_an_exhausted_outbound_quota_refuses_a_campaign(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/limits", {"monthlyOutboundQuota": 0})
    status, body = await api.post(CAMPAIGNS, _campaign())
    assert (status, body["error"]["code"]) == (429, "MONTHLY_OUTBOUND_QUOTA_EXCEEDED")


async def test_a_cold_audience_on_a_warming_instance_warns_without_blocking(api: Api) -> None:
    status, body = await api.post(CAMPAIGNS, _campaign(instanceId=INSTANCE_WARMING))
    assert status == 201
    safety = body["data"]["safety"]
    assert (safety["decision"], safety["state"], safety["score"]) == ("warn", "warming", 56)
    assert safety["appliedLimits"] == {
        "hourlyOutboundCap": 25,
        "dailyOutboundCap": 100,
        "maxCampaignRecipients": 100,
        "maxColdRatio": 0.4,
    }
    assert safety["audience"] == {
        "totalRecipients": 3, "warmCount": 1, "coldCount": 2, "unknownCount": 0,
        "blockedCount": 0, "coldRatio": 0.6667, "warmRatio": 0.3333, "unknownRatio": 0.0,
    }  # fmt: skip
    assert safety["reasons"] and safety["recommendations"]


async def test_a_warm_audience_on_a_warming_instance_is_allowed(api: Api) -> None:
    recipients = {"type": "explicit", "value": [CONTACT_ANA]}
    campaign = await api.ok(
        "POST", CAMPAIGNS, _campaign(instanceId=INSTANCE_WARMING, recipients=recipients)
    )
    assert campaign["safety"]["decision"] == "allow" and campaign["safety"]["reasons"] == []


async def test_a_stable_instance_allows_a_cold_audience(api: Api) -> None:
    campaign = await api.ok("POST", CAMPAIGNS, _campaign())
    assert campaign["safety"]["decision"] == "allow"


async def test_an_audience_over_the_recipient_cap_of_a_new_instance_warns(
    make_api: ApiFactory,
) -> None:
    contacts = tuple(
        SeedContact(id=f"00000000-0000-4000-8000-{n:012d}", name=f"c{n}",
                    phone=f"+3361234{n:04d}", temperature="warm")
        for n in range(31)
    )  # fmt: skip
    api = await make_api(
        seed=SeedData(instances=(SeedInstance(id=INSTANCE_NEW, name="fresh", safety_state="new"),),
                      contacts=contacts)
    )  # fmt: skip
    campaign = await api.ok("POST", CAMPAIGNS, _campaign(instanceId=INSTANCE_NEW))
    safety = campaign["safety"]
    assert safety["decision"] == "warn" and safety["appliedLimits"]["maxCampaignRecipients"] == 30
    assert any("31 recipients" in reason for reason in safety["reasons"])


async def test_get_stats_pause_and_resume(api: Api) -> None:
    recipients = {"type": "explicit", "value": [CONTACT_ANA, CONTACT_BRUNO]}
    created = await api.ok("POST", CAMPAIGNS, _campaign(recipients=recipients))
    path = f"{CAMPAIGNS}/{created['id']}"
    assert (await api.ok("GET", path))["name"] == "spring"
    stats = await api.ok("GET", f"{path}/stats")
    assert stats["stats"]["total"] == 2 and stats["progressPercent"] == 0
    assert stats["timeline"]["scheduledFor"] == "2026-12-01T08:00:00.000Z"
    assert (await api.ok("POST", f"{path}/pause"))["status"] == "paused"
    assert (await api.post(f"{path}/pause"))[1]["error"]["code"] == "BAD_REQUEST"
    resumed = await api.ok("POST", f"{path}/resume")
    assert resumed["status"] == "scheduled" and "safety" in resumed
    status, body = await api.post(f"{path}/resume")
    assert (status, body["error"]["code"]) == (400, "BAD_REQUEST")


async def test_an_unknown_campaign_is_not_found(api: Api) -> None:
    assert (await api.get(f"{CAMPAIGNS}/{UNKNOWN}/stats"))[0] == 404
