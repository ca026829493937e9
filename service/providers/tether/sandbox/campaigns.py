"""``/api/campaigns``: create, list, get, and the daily-quota routes (C1-C3, C8-C11, R6-R8)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web

from service.providers.tether.sandbox.auth import authenticate
from service.providers.tether.sandbox.config import ListShape
from service.providers.tether.sandbox.context import (
    Organization,
    TetherSandbox,
    organization_of,
    sandbox_of,
)
from service.providers.tether.sandbox.errors import ApiError, bad_request
from service.providers.tether.sandbox.tokens import object_id
from service.providers.tether.sandbox.validation import (
    OBJECT_ID,
    campaign_problems,
    e164_phone,
    parse_instant,
)


def millis(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/campaigns/validate-date", validate_date)
    router.add_get("/api/campaigns/next-available-slot", next_available_slot)
    router.add_post("/api/campaigns/auto-segment", auto_segment)
    router.add_post("/api/campaigns", create)
    router.add_get("/api/campaigns", list_campaigns)
    router.add_get("/api/campaigns/{id}", get_campaign)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise bad_request("The body must be JSON") from None


async def create(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    body = await _json(request)
    config = sandbox.config
    problems = campaign_problems(
        body,
        phone_rule=config.phone_rule,
        require_schedule=config.missing_schedule == "reject",
    )
    if problems:
        raise bad_request("; ".join(problems))
    org = organization_of(request)
    campaign = _campaign(sandbox, org, body, authenticate(request))
    ledger = org.ledger()
    day = ledger.local_day(parse_instant(campaign["scheduleDate"]) or _now(sandbox))
    count = campaign["stats"]["total"]
    if sandbox.config.over_quota_create == "reject" and not ledger.fits(day, count):
        raise ApiError(
            400,
            "daily_quota_exceeded",
            f"Not enough daily SMS quota on {day.isoformat()} for {count} contacts",
        )
    org.campaigns[campaign["_id"]] = campaign
    answer = {"success": True, "message": "Campaign created", "data": campaign}
    return web.json_response(answer, status=sandbox.config.create_status)


def _campaign(
    sandbox: TetherSandbox, org: Organization, body: dict[str, Any], user: dict[str, Any]
) -> dict[str, Any]:
    now = millis(_now(sandbox))
    when = parse_instant(body.get("scheduleDate")) or _now(sandbox)  # missing_schedule "now"
    rule = sandbox.config.phone_rule
    new = [
        {**contact, "phoneNumber": e164_phone(contact["phoneNumber"], rule)}
        for contact in body.get("newContacts") or []
    ]
    existing = body.get("selectedExistingContacts") or []
    user_ids = body.get("userIds") or []
    return {
        "_id": object_id(sandbox.clock()),
        "organizationId": org.config.id,
        "name": body["name"],
        "message": body["message"],
        "newContacts": new,
        "selectedExistingContacts": existing,
        "userIds": user_ids,
        "scheduleDate": millis(when),
        "process": body.get("process"),
        "status": "scheduled",
        "isAutopilot": body.get("isAutopilot", False),
        "type": body.get("type", "sms"),
        "segmentation": body.get("segmentation"),
        "assignment": body.get("assignment"),
        "contactStatus": "New Lead",
        "createdBy": {"_id": user["id"], "fullName": user["fullName"]},
        "failedUserIds": [],
        "failedDetails": [],
        "stats": {
            "total": len(new) + len(existing) + len(user_ids),
            "sent": 0,
            "failed": 0,
            "successRate": "0%",
        },
        "createdAt": now,
        "updatedAt": now,
    }


async def list_campaigns(request: web.Request) -> web.Response:
    campaigns = list(organization_of(request).campaigns.values())
    return web.json_response(campaign_list(campaigns, sandbox_of(request).config.list_shape))


def campaign_list(campaigns: list[dict[str, Any]], shape: ListShape) -> Any:
    """The list answer in ``shape`` (G4: undocumented): ``{success, data: [...]}``,
    ``{success, campaigns: [...]}`` or the bare list."""
    if shape == "bare":
        return campaigns
    return {"success": True, shape: campaigns}  # the shape names the list's key


async def get_campaign(request: web.Request) -> web.Response:
    campaign_id = request.match_info["id"]
    if not OBJECT_ID.match(campaign_id):
        raise bad_request("id must be a 24-hex ObjectId")
    campaign = organization_of(request).campaigns.get(campaign_id)
    if campaign is None:
        raise ApiError(404, "not_found", "Campaign not found")
    return web.json_response({"success": True, "data": campaign})


async def validate_date(request: web.Request) -> web.Response:
    body = await _json(request)
    when = parse_instant(body.get("scheduledISO")) if isinstance(body, dict) else None
    count = body.get("contactCount") if isinstance(body, dict) else None
    if when is None:
        raise bad_request("Missing required field: scheduledISO (UTC ISO 8601)")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise bad_request("contactCount must be an integer >= 0")
    org = organization_of(request)
    ledger = org.ledger()
    day, exclude = ledger.local_day(when), body.get("excludeCampaignId")
    remaining = ledger.remaining(day, exclude=exclude if isinstance(exclude, str) else None)
    available = remaining is None or remaining >= count
    answer: dict[str, Any] = {
        "success": True,
        "available": available,
        "remaining": remaining,
        "limit": org.config.daily_limit,
    }
    if not available:
        answer["message"] = f"Only {remaining} SMS remaining on {day.isoformat()}"
    return web.json_response(answer)


async def next_available_slot(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    raw = request.query.get("contactCount", "0")
    if not raw.isdigit():
        raise bad_request("contactCount must be an integer >= 0")
    org = organization_of(request)
    count, ledger = int(raw), org.ledger()
    today = ledger.local_day(_now(sandbox))
    found = ledger.next_available(today, count)
    unlimited = org.config.daily_limit is None
    answer = {
        "success": True,
        "isUnlimited": unlimited,
        "timezone": org.config.timezone,
        "dailyLimit": org.config.daily_limit,
        "todayDate": today.isoformat(),
        "todayUsage": None if unlimited else ledger.used(today),
        "todayAvailableQuota": ledger.remaining(today),
        "nextAvailableDate": found.isoformat() if found else None,
        "availableQuota": ledger.remaining(found) if found else None,
        "daysUntilAvailable": (found - today).days if found else None,
        "message": f"Next date with room for {count}: {found}" if found else "No date found",
    }
    return web.json_response(answer)


async def auto_segment(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    body = await _json(request)
    total = body.get("totalContacts") if isinstance(body, dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        raise bad_request("totalContacts must be an integer >= 1")
    ledger = organization_of(request).ledger()
    first = _date(body.get("firstSegmentDate"), ledger.local_day(_now(sandbox)))
    at = _time(body.get("firstSegmentTime"))
    zone = ledger.zone if sandbox.config.segment_time == "org_local" else UTC
    size = sandbox.config.unlimited_segment_size
    plan = ledger.segments(total, first, at, zone=zone, unlimited_size=size)
    segments = [
        {"id": f"seg-{i}", "scheduledDate": millis(when), "contactCount": count}
        for i, (when, count) in enumerate(plan, start=1)
    ]
    warnings = [] if sum(count for _, count in plan) == total else ["Not enough quota"]
    answer = {"success": True, "segments": segments, "totalSegments": len(segments)}
    return web.json_response({**answer, "warnings": warnings})


def _date(value: object, default: date) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise bad_request("firstSegmentDate must be YYYY-MM-DD") from None


def _time(value: object) -> time:
    """C11 reads it as the browser's local time; the zone is the ``segment_time`` setting."""
    try:
        return time.fromisoformat(str(value or "10:00"))
    except ValueError:
        raise bad_request("firstSegmentTime must be HH:mm") from None


def _now(sandbox: TetherSandbox) -> datetime:
    return datetime.fromtimestamp(sandbox.clock(), UTC)
