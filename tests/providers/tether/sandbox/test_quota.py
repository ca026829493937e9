"""The daily SMS quota (C8-C11, R8): reservations, validate-date, next slot, auto-segment."""

from __future__ import annotations

from tests.providers.tether.sandbox.conftest import CAMPAIGN, Api, ApiFactory

DAY = "2030-05-20"  # CAMPAIGN's scheduleDate, 15:00Z = 11:00 in Toronto


async def test_validate_date_reads_sent_plus_reserved(make_api: ApiFactory) -> None:
    api = await make_api(daily_limit=5)
    await api.ok("PUT", "/_sandbox/quota", {"sent": {DAY: 2}})
    created = (await api.ok("POST", "/api/campaigns", CAMPAIGN))["data"]
    body = {"scheduledISO": "2030-05-20T15:00:00.000Z", "contactCount": 2}
    verdict = await api.ok("POST", "/api/campaigns/validate-date", body)
    assert verdict == {
        "success": True,
        "available": False,
        "remaining": 1,
        "limit": 5,
        "message": f"Only 1 SMS remaining on {DAY}",
    }
    excluded = {**body, "excludeCampaignId": created["_id"]}
    assert (await api.ok("POST", "/api/campaigns/validate-date", excluded))["available"] is True


async def test_unlimited_plans_answer_nulls(make_api: ApiFactory) -> None:
    api = await make_api(daily_limit=None)
    body = {"scheduledISO": "2030-05-20T15:00:00Z", "contactCount": 10_000}
    verdict = await api.ok("POST", "/api/campaigns/validate-date", body)
    assert (verdict["available"], verdict["remaining"], verdict["limit"]) == (True, None, None)


async def test_an_over_quota_create_is_400_unless_allowed(make_api: ApiFactory) -> None:
    api = await make_api(daily_limit=1)
    status, body = await api.call("POST", "/api/campaigns", CAMPAIGN)
    assert status == 400 and body["error"]["code"] == "daily_quota_exceeded"
    allowing = await make_api(daily_limit=1, over_quota_create="allow")
    assert (await allowing.call("POST", "/api/campaigns", CAMPAIGN))[0] == 200


async def test_next_available_slot_skips_full_days(make_api: ApiFactory) -> None:
    api = await make_api(daily_limit=3)
    today = (await api.ok("GET", "/api/campaigns/next-available-slot"))["todayDate"]
    await api.ok("PUT", "/_sandbox/quota", {"sent": {today: 3}})
    slot = await api.ok("GET", "/api/campaigns/next-available-slot?contactCount=2")
    assert slot["nextAvailableDate"] > today and slot["daysUntilAvailable"] == 1
    assert (slot["todayAvailableQuota"], slot["availableQuota"], slot["dailyLimit"]) == (0, 3, 3)


async def test_auto_segment_fills_each_day_and_skips_booked_ones(make_api: ApiFactory) -> None:
    api = await make_api(daily_limit=4)
    await api.ok("PUT", "/_sandbox/quota", {"sent": {"2030-05-21": 4, "2030-05-20": 1}})
    body = {"totalContacts": 7, "firstSegmentDate": DAY, "firstSegmentTime": "15:00"}
    answer = await api.ok("POST", "/api/campaigns/auto-segment", body)
    assert [(s["scheduledDate"], s["contactCount"]) for s in answer["segments"]] == [
        ("2030-05-20T15:00:00.000Z", 3),
        ("2030-05-22T15:00:00.000Z", 4),
    ]
    assert (answer["totalSegments"], answer["warnings"]) == (2, [])


async def test_unlimited_plans_segment_a_hundred_a_day(make_api: ApiFactory) -> None:
    api = await make_api(daily_limit=None)
    answer = await api.ok(
        "POST", "/api/campaigns/auto-segment", {"totalContacts": 250, "firstSegmentDate": DAY}
    )
    assert [s["contactCount"] for s in answer["segments"]] == [100, 100, 50]


async def test_quota_routes_validate_their_inputs(api: Api) -> None:
    assert (await api.call("POST", "/api/campaigns/validate-date", {"contactCount": 1}))[0] == 400
    assert (await api.call("POST", "/api/campaigns/auto-segment", {"totalContacts": 0}))[0] == 400
    assert (await api.call("GET", "/api/campaigns/next-available-slot?contactCount=x"))[0] == 400


async def test_auto_segment_reads_its_time_in_the_zone_set(make_api: ApiFactory) -> None:
    body = {"totalContacts": 1, "firstSegmentDate": DAY, "firstSegmentTime": "11:00"}
    utc = await make_api()
    [segment] = (await utc.ok("POST", "/api/campaigns/auto-segment", body))["segments"]
    assert segment["scheduledDate"] == "2030-05-20T11:00:00.000Z"
    local = await make_api(segment_time="org_local")  # America/Toronto: UTC-4 in May
    [segment] = (await local.ok("POST", "/api/campaigns/auto-segment", body))["segments"]
    assert segment["scheduledDate"] == "2030-05-20T15:00:00.000Z"
