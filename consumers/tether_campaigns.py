"""``tether.campaign.create``: check or split over the daily quota, create, decide.

A retry after an unanswered create (``reconcile_since``) first looks for what the earlier try
made, before any quota check (that campaign holds quota itself) and before any create.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from consumers.outcomes import (
    Deferred,
    Failed,
    HandlerContext,
    Outcome,
    Succeeded,
    outcome_from_error,
)
from service.contract.commands import Command
from service.contract.errors import PROVIDER_NOT_CONFIGURED, ErrorInfo, TetherError, error_info
from service.contract.tether import TetherCampaignData
from service.contract.tether_events import CreatedCampaign, tether_campaign_created_event
from service.providers.common.retry import CallFailure
from service.providers.tether.client import CreateResult, TetherClient
from service.providers.tether.mapping import (
    recipient_key,
    recipients_of,
    segment_name,
    split,
    to_campaign_body,
)
from service.providers.tether.quota import (
    auto_segment_body,
    days_after,
    fits,
    org_zone,
    quota_exceeded,
    segment_plan,
    slot_date,
    validate_date_body,
)
from service.providers.tether.reconcile import find_segments, recipients

NOT_CONFIGURED = ErrorInfo(
    PROVIDER_NOT_CONFIGURED,
    "this relay has no Tether account: set TETHER_BASE_URL and TETHER_API_TOKEN (or "
    "TETHER_EMAIL and TETHER_PASSWORD), restart it, then replay the command",
)


@dataclass(slots=True)
class _Progress:
    """What one try achieved so far: the campaigns Tether holds for it and create attempts."""

    campaigns: list[dict[str, Any]]
    attempts: int = 0

    def add(self, created: CreateResult) -> None:
        self.campaigns.append(created.data)
        self.attempts += created.attempts


Failure = CallFailure[TetherError]


@dataclass(frozen=True, slots=True)
class TetherCampaignHandler:
    client: TetherClient | None  # None: Tether is not configured
    clock: Callable[[], float] = time.time

    async def __call__(self, command: Command, context: HandlerContext) -> Outcome:
        data = command.data
        assert isinstance(data, TetherCampaignData)
        if self.client is None:
            return Failed(NOT_CONFIGURED)
        called_at = self.clock()
        since = _since(context.reconcile_since)
        progress = _Progress([])
        create = self._segmented if data.quota == "segment" else self._single
        try:
            failure = await create(self.client, data, since, progress)
        except TetherError as exc:  # a lookup or the quota check: no create was attempted
            failure = CallFailure(exc, attempts=0)
        if failure is not None:
            return _failed(failure, progress, context, called_at)
        created = tuple(_reported(c) for c in progress.campaigns)
        attempts = context.prior_attempts + max(progress.attempts, 1)
        event = tether_campaign_created_event(command, created, attempts=attempts)
        return Succeeded(result=event, attempts=attempts)

    async def _single(
        self,
        client: TetherClient,
        data: TetherCampaignData,
        since: datetime | None,
        progress: _Progress,
    ) -> Failure | None:
        """Create the one campaign, unless an earlier try did; its failure, if it failed."""
        body = to_campaign_body(data)
        found = await client.find_campaign(body, since) if since is not None else None
        if found is not None:
            progress.campaigns.append(found)
            return None
        if data.quota == "check":
            await self._check(client, data)
        result = await client.create_campaign(body)
        if isinstance(result, CallFailure):
            return result
        progress.add(result)
        return None

    async def _check(self, client: TetherClient, data: TetherCampaignData) -> None:
        when = data.schedule_date or datetime.fromtimestamp(self.clock(), UTC)
        count = data.recipient_count
        verdict = await client.validate_date(validate_date_body(when, count))
        if fits(verdict):
            return
        slot = await client.next_available_slot(count)
        next_date = slot_date(slot, when)
        if next_date is None:
            next_date = await _first_day_with_room(client, when, count, org_zone(slot))
        raise quota_exceeded(when, count, verdict, next_date)

    async def _segmented(
        self,
        client: TetherClient,
        data: TetherCampaignData,
        since: datetime | None,
        progress: _Progress,
    ) -> Failure | None:
        """One campaign per segment; after a retry, only the recipients no part holds yet."""
        if since is not None:
            campaigns = await client.list_campaigns()
            progress.campaigns.extend(find_segments(campaigns, data.name, data.message, since))
        covered = set().union(*(recipients(c) for c in progress.campaigns))
        remaining = [r for r in recipients_of(data) if recipient_key(r) not in covered]
        if not remaining:
            return None
        when = data.schedule_date or datetime.fromtimestamp(self.clock(), UTC)
        answer = await client.auto_segment(auto_segment_body(when, len(remaining)))
        plan = segment_plan(answer, len(remaining), asked=when)
        parts = split(remaining, [segment.count for segment in plan])
        total = len(progress.campaigns) + len(plan)
        first = len(progress.campaigns) + 1
        for index, (segment, part) in enumerate(zip(plan, parts, strict=True), start=first):
            name = segment_name(data.name, index, total)
            body = to_campaign_body(data, recipients=part, schedule=segment.schedule, name=name)
            result = await client.create_campaign(body)
            if isinstance(result, CallFailure):
                return result
            progress.add(result)
        return None


async def _first_day_with_room(
    client: TetherClient, when: datetime, count: int, zone: tzinfo
) -> str | None:
    """The first of the few days after ``when``'s that validate-date finds room on, or None."""
    for moment in days_after(when, zone):
        if fits(await client.validate_date(validate_date_body(moment, count))):
            return moment.date().isoformat()
    return None


def _failed(
    failure: Failure, progress: _Progress, context: HandlerContext, called_at: float
) -> Outcome:
    if not progress.campaigns:
        return outcome_from_error(
            failure.error, context, attempts=failure.attempts, called_at=called_at
        )
    return _part_way(failure, progress, context, called_at)


def _part_way(
    failure: Failure, progress: _Progress, context: HandlerContext, called_at: float
) -> Outcome:
    """Some segments exist: a retry must find them, so it always reconciles first."""
    info = error_info(failure.error)
    attempts = progress.attempts + failure.attempts
    if info.retryable:
        since = context.reconcile_since or called_at
        return Deferred(info, attempts=attempts, reconcile_since=since)
    made = ", ".join(str(c.get("_id")) for c in progress.campaigns)
    message = f"{info.message}; segments already created at Tether: {made}"
    return Failed(replace(info, message=message), attempts=context.prior_attempts + attempts)


def _reported(campaign: Mapping[str, Any]) -> CreatedCampaign:
    stats = campaign.get("stats")
    total = stats.get("total") if isinstance(stats, Mapping) else None
    return CreatedCampaign(
        campaign_id=_text(campaign.get("_id")),
        status=_text(campaign.get("status")),
        schedule_date=_text(campaign.get("scheduleDate")),
        recipients=total if isinstance(total, int) else len(recipients(campaign)),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _since(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None
