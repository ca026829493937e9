"""``campaign.create``: resolve, optionally read instance health first, create, decide."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from consumers.outcomes import (
    Deferred,
    HandlerContext,
    Outcome,
    Succeeded,
    outcome_from_error,
    resolve_instance,
)
from service.contract.commands import Command, CreateCampaignData
from service.contract.errors import MsgFlashError
from service.contract.events import campaign_created_event, safety_warning_event
from service.providers.common.retry import CallFailure
from service.providers.msgflash.client import MsgFlashClient
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.mapping import to_campaign_payload
from service.providers.msgflash.quota import QuotaGate

log = structlog.get_logger("consumers.msgflash_campaigns")

# Safety states in which MsgFlash applies warm-up caps that a campaign audience can exceed.
WARMING_STATES = frozenset({"new", "warming"})


@dataclass(frozen=True, slots=True)
class CampaignHandler:
    client: MsgFlashClient
    resolver: InstanceResolver
    quota: QuotaGate
    preflight: bool = True

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
        health = await self._preflight(instance_id) if self.preflight else None
        if not self.quota.allows_call():
            return Deferred(self.quota.error_info(), counts=False)
        result = await self.client.create_campaign(payload)
        if isinstance(result, CallFailure):
            await self.quota.observe(result.error)
            return outcome_from_error(result.error, context, instance_id, attempts=result.attempts)
        self.quota.record_success()
        attempts = context.prior_attempts + result.attempts
        created = campaign_created_event(
            command, result.data, instance_id=instance_id, attempts=attempts
        )
        warning = safety_warning_event(command, result.data, instance_id=instance_id, health=health)
        return Succeeded(
            result=created,
            extra=(warning,) if warning is not None else (),
            instance_id=instance_id,
            attempts=attempts,
        )

    async def _preflight(self, instance_id: str) -> Mapping[str, Any] | None:
        """Warm-up caps of a new/warming instance, so the warning can name them. Never blocks."""
        try:
            health = await self.client.instance_health(instance_id)
        except MsgFlashError as exc:
            log.warning("campaign_preflight_failed", instanceId=instance_id, code=exc.code)
            return None
        return health if health.get("safetyState") in WARMING_STATES else None
