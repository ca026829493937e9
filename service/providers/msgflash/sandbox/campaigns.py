"""``/api/v1/campaigns``: create, list, get, stats, pause, resume (§8), with warmup safety (§14).

The list is the console's ``GET /api/campaigns`` (§4 lists it as console-only) served on the
public surface, cursor-paged like the messages list: what a client needs to find a campaign
whose creation answer it lost.

The sandbox accepts and stores campaigns but never runs them: a created campaign stays
``scheduled`` (or ``paused``) and its counters stay at zero. What a relay needs from a
campaign is the creation answer: status, plan gate, validation and the safety block.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from service.providers.msgflash.sandbox.composition import check_template, direct_content
from service.providers.msgflash.sandbox.context import Sandbox, sandbox_of, state_of
from service.providers.msgflash.sandbox.envelope import (
    ApiError,
    data_response,
    not_found,
    read_object,
    validation_error,
)
from service.providers.msgflash.sandbox.formats import iso_timestamp, parse_instant
from service.providers.msgflash.sandbox.instances import find_instance
from service.providers.msgflash.sandbox.pagination import cursor_page, limit_param
from service.providers.msgflash.sandbox.records import CampaignRecord, ContactRecord, InstanceRecord
from service.providers.msgflash.sandbox.safety import Audience, campaign_safety
from service.providers.msgflash.sandbox.state import SandboxState
from service.providers.msgflash.sandbox.validation import validate_campaign_request

PAUSABLE = frozenset({"scheduled", "running"})
RESUMABLE = frozenset({"paused", "paused_quota", "paused_plan"})


async def create_campaign(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    sandbox.gate.require_feature(state.account, "campaigns", "CAMPAIGNS_NOT_AVAILABLE_ON_PLAN")
    body = await read_object(request)
    problems = validate_campaign_request(body)
    if problems:
        raise validation_error(problems)
    instance = find_instance(state, body["instanceId"])
    template_id = body.get("templateId")
    if template_id is not None:
        template = state.templates.get(template_id)
        if template is None:
            raise not_found("Template")
        check_template(template)
    recipients = _recipients_echo(body["recipients"])
    audience = _audience(_resolve_recipients(state, recipients))
    if body.get("type") == "buttons" and not instance.business:
        raise ApiError(
            403,
            "UNSUPPORTED_FEATURE",
            f"Buttons need a WhatsApp Business account; instance {instance.name!r} is not one",
        )
    sandbox.gate.ensure_outbound_available(state.account)
    campaign = _campaign(sandbox, state, body, instance, recipients, audience)
    state.campaigns[campaign.id] = campaign
    return data_response(campaign.as_api(), status=201)


def _campaign(
    sandbox: Sandbox,
    state: SandboxState,
    body: Mapping[str, Any],
    instance: InstanceRecord,
    recipients: dict[str, Any],
    audience: Audience,
) -> CampaignRecord:
    content = direct_content(body, text_key="body") if body.get("type") else None
    schedule = parse_instant(body["schedule"])
    assert schedule is not None  # validated above
    now = sandbox.clock()
    return CampaignRecord(
        id=str(uuid.uuid4()),
        user_id=state.user.id,
        instance_id=instance.id,
        name=body["name"],
        status="scheduled",
        template_id=body.get("templateId"),
        type=content.type if content else None,
        body=content.body if content else None,
        media_url=content.media_url if content else None,
        schedule=schedule.timestamp(),
        # "noe" is the English docs' mistranslation of "none" (§16.1): accept, answer "none".
        repeat="none" if body.get("repeat") in (None, "noe") else body["repeat"],
        recipients=recipients,
        template_variables=body.get("variables"),
        audience_total=audience.total,
        safety=campaign_safety(instance.safety_state, instance.safety_score, audience),
        created_at=now,
        updated_at=now,
    )


def _recipients_echo(selector: Mapping[str, Any]) -> dict[str, Any]:
    kind = selector["type"]
    if kind == "group":
        return {"type": kind, "groupId": selector["groupId"]}
    values = list(dict.fromkeys(selector.get("value") or ())) if kind != "all" else []
    return {"type": kind, "value": values}


def _resolve_recipients(state: SandboxState, recipients: Mapping[str, Any]) -> list[ContactRecord]:
    kind = recipients["type"]
    contacts = state.contacts
    if kind == "all":
        return list(contacts.values())
    if kind == "tags":
        wanted = set(recipients["value"])
        return [contact for contact in contacts.values() if wanted & set(contact.tags)]
    if kind == "group":
        if recipients["groupId"] not in state.groups:
            raise not_found("Group")
        members = state.members.get(recipients["groupId"], {})
        return [contacts[contact_id] for contact_id in members if contact_id in contacts]
    unknown = [contact_id for contact_id in recipients["value"] if contact_id not in contacts]
    if unknown:
        raise ApiError(404, "NOT_FOUND", f"Contact not found: {', '.join(unknown)}")
    return [contacts[contact_id] for contact_id in recipients["value"]]


def _audience(contacts: Iterable[ContactRecord]) -> Audience:
    temperatures = [contact.temperature for contact in contacts]
    return Audience(
        warm=temperatures.count("warm"),
        cold=temperatures.count("cold"),
        unknown=temperatures.count("unknown"),
    )


def find_campaign(state: SandboxState, campaign_id: str) -> CampaignRecord:
    campaign = state.campaigns.get(campaign_id)
    if campaign is None:
        raise not_found("Campaign")
    return campaign


async def list_campaigns(request: web.Request) -> web.Response:
    query = request.query
    instance_id = query.get("instanceId")
    newest_first = [
        campaign
        for campaign in reversed(state_of(request).campaigns.values())
        if instance_id is None or campaign.instance_id == instance_id
    ]
    page = cursor_page(
        newest_first,
        cursor=query.get("cursor"),
        limit=limit_param(query, default=50),
        ident=lambda campaign: campaign.id,
        sort_value=lambda campaign: iso_timestamp(campaign.created_at),
    )
    return data_response(
        {
            "campaigns": [campaign.as_api() for campaign in page.items],
            "nextCursor": page.next_cursor,
            "hasMore": page.has_more,
        }
    )


async def get_campaign(request: web.Request) -> web.Response:
    campaign = find_campaign(state_of(request), request.match_info["id"])
    return data_response(campaign.as_api())


async def campaign_stats(request: web.Request) -> web.Response:
    campaign = find_campaign(state_of(request), request.match_info["id"])
    counters = {key: value for key, value in campaign.stats().items() if isinstance(value, int)}
    return data_response(
        {
            "campaignId": campaign.id,
            "status": campaign.status,
            "stats": {"total": campaign.audience_total, **counters},
            "progressPercent": 0,
            "timeline": {
                "scheduledFor": iso_timestamp(campaign.schedule),
                "processingStartedAt": None,
                "lastEnqueuedAt": None,
                "completedAt": None,
                "cancelledAt": None,
                "lastActivityAt": iso_timestamp(campaign.updated_at),
            },
            "startedAt": None,
            "estimatedCompletionAt": None,
        }
    )


async def pause_campaign(request: web.Request) -> web.Response:
    sandbox, state = sandbox_of(request), state_of(request)
    campaign = find_campaign(state, request.match_info["id"])
    if campaign.status not in PAUSABLE:
        raise ApiError(400, "BAD_REQUEST", f"A {campaign.status} campaign cannot be paused")
    return _store(state, replace(campaign, status="paused", updated_at=sandbox.clock()))


async def resume_campaign(request: web.Request) -> web.Response:
    """Resume re-evaluates safety against today's audience (§8: resume may carry safety)."""
    sandbox, state = sandbox_of(request), state_of(request)
    campaign = find_campaign(state, request.match_info["id"])
    if campaign.status not in RESUMABLE:
        raise ApiError(400, "BAD_REQUEST", f"A {campaign.status} campaign cannot be resumed")
    instance = find_instance(state, campaign.instance_id)
    audience = _audience(_resolve_recipients(state, campaign.recipients))
    safety = campaign_safety(instance.safety_state, instance.safety_score, audience)
    resumed = replace(campaign, status="scheduled", safety=safety, updated_at=sandbox.clock())
    return _store(state, resumed)


def _store(state: SandboxState, campaign: CampaignRecord) -> web.Response:
    state.campaigns[campaign.id] = campaign
    return data_response(campaign.as_api())


def add_routes(router: web.UrlDispatcher, *, with_list: bool = False) -> None:
    router.add_post("/api/v1/campaigns", create_campaign)
    if with_list:
        router.add_get("/api/v1/campaigns", list_campaigns)
    router.add_get("/api/v1/campaigns/{id}", get_campaign)
    router.add_get("/api/v1/campaigns/{id}/stats", campaign_stats)
    router.add_post("/api/v1/campaigns/{id}/pause", pause_campaign)
    router.add_post("/api/v1/campaigns/{id}/resume", resume_campaign)
