"""``campaign.create``: resolve, optionally read instance health first, create, decide.

MsgFlash takes no idempotency key, so a create whose answer was lost (or whose holder died
mid-call) is looked up before anything is sent again: a late answer makes one campaign, never
two.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from consumers.outcomes import (
    DEFAULT_QUOTA_DEADLINE,
    Deferred,
    Failed,
    HandlerContext,
    Outcome,
    QuotaDeadline,
    Succeeded,
    failed_create,
    quota_wait,
    resolve_instance,
)
from service.contract.commands import Command, CreateCampaignData
from service.contract.errors import OUTCOME_UNKNOWN, ErrorInfo, MsgFlashError, error_info
from service.contract.events import campaign_created_event, safety_warning_event
from service.providers.common.retry import CallFailure
from service.providers.msgflash.client import MsgFlashClient
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.mapping import to_campaign_payload
from service.providers.msgflash.quota import QuotaGate
from service.providers.msgflash.reconcile import find_created_campaign

log = structlog.get_logger("consumers.msgflash_campaigns")

# Safety states in which MsgFlash applies warm-up caps that a campaign audience can exceed.
WARMING_STATES = frozenset({"new", "warming"})


@dataclass(frozen=True, slots=True)
class CampaignHandler:
    client: MsgFlashClient
    resolver: InstanceResolver
    quota: QuotaGate
    preflight: bool = True
    outcome_unknown_policy: Literal["fail", "resend"] = "fail"
    quota_deadline: QuotaDeadline = DEFAULT_QUOTA_DEADLINE

    async def __call__(self, command: Command, context: HandlerContext) -> Outcome:
        data = command.data
        assert isinstance(data, CreateCampaignData)
        resolved = await resolve_instance(
            self.resolver, instance_id=data.instance_id, instance=data.instance, context=context
        )
        if not isinstance(resolved, str):
            return resolved
        instance_id = resolved
        payload = to_campaign_payload(data, instance_id)
        if context.reconcile_since is not None:
            looked_up = await self._look_up(command, payload, context, instance_id)
            if looked_up is not None:
                return looked_up
        health = await self._preflight(instance_id) if self.preflight else None
        give_up_at = self.quota_deadline.give_up_at(context, data.schedule.timestamp())
        if not self.quota.allows_call():
            return quota_wait(self.quota.error_info(), context, give_up_at=give_up_at)
        called_at = time.time()
        result = await self.client.create_campaign(payload, before_send=context.calling)
        if isinstance(result, CallFailure):
            return await failed_create(
                result, self.quota, context, instance_id, called_at=called_at, give_up_at=give_up_at
            )
        self.quota.record_success()
        return self._succeeded(command, result.data, instance_id, result.attempts, context, health)

    def _succeeded(
        self,
        command: Command,
        response: Mapping[str, Any],
        instance_id: str,
        attempts_now: int,
        context: HandlerContext,
        health: Mapping[str, Any] | None = None,
    ) -> Succeeded:
        attempts = context.prior_attempts + attempts_now
        created = campaign_created_event(
            command, response, instance_id=instance_id, attempts=attempts
        )
        warning = safety_warning_event(command, response, instance_id=instance_id, health=health)
        return Succeeded(
            result=created,
            extra=(warning,) if warning is not None else (),
            instance_id=instance_id,
            attempts=attempts,
        )

    async def _look_up(
        self,
        command: Command,
        payload: Mapping[str, Any],
        context: HandlerContext,
        instance_id: str,
    ) -> Outcome | None:
        """An earlier try may have created the campaign: its outcome if it did, or if nothing
        may be sent; None to go on and create it."""
        assert context.reconcile_since is not None
        since = datetime.fromtimestamp(context.reconcile_since, tz=UTC)
        try:
            found = await find_created_campaign(self.client, payload, since=since)
        except MsgFlashError as exc:
            # Unknown whether it exists: never create it again on a guess.
            if exc.retryable:
                return Deferred(error_info(exc), reconcile_since=context.reconcile_since)
            return Failed(_unknown(f"looking the campaign up failed ({exc.code}: {exc.message})"))
        log.info("campaign_reconciled", found=found is not None)
        if found is not None:
            return self._succeeded(command, found, instance_id, 0, context)
        if context.lease_expired and self.outcome_unknown_policy == "fail":
            return Failed(_unknown("MsgFlash lists no such campaign"), instance_id=instance_id)
        return None

    async def _preflight(self, instance_id: str) -> Mapping[str, Any] | None:
        """Warm-up caps of a new/warming instance, so the warning can name them. Never blocks."""
        try:
            health = await self.client.instance_health(instance_id)
        except MsgFlashError as exc:
            log.warning("campaign_preflight_failed", instanceId=instance_id, code=exc.code)
            return None
        return health if health.get("safetyState") in WARMING_STATES else None


def _unknown(why: str) -> ErrorInfo:
    return ErrorInfo(
        OUTCOME_UNKNOWN,
        f"an earlier try may have created this campaign and {why}; not created again to avoid "
        "a duplicate: check the campaigns in MsgFlash, then replay it with "
        "`msgflash-relay dlq replay` if it does not exist",
    )
