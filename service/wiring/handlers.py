"""Which handler takes which command type, made from each provider's parts.

Here and not in the providers' ``setup`` modules: handlers live in ``consumers``, which sit
above the providers, so a provider may not build them. One function per provider keeps what
each one needs (MsgFlash's instance resolver and quota gate, Tether's client) side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from consumers.msgflash_campaigns import CampaignHandler
from consumers.msgflash_messages import MessageHandler
from consumers.outcomes import Handler, QuotaDeadline
from consumers.tether_campaigns import TetherCampaignHandler
from service.bus.publisher import Publisher
from service.contract.commands import CommandType
from service.contract.errors import MsgFlashError
from service.contract.events import quota_exhausted_event
from service.metrics import Metrics
from service.providers.msgflash.client import MsgFlashClient
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.quota import QuotaGate
from service.providers.tether.setup import TetherParts
from service.settings import DEFAULT_ACCOUNT, Settings
from service.state.store import StateStore

Handlers = dict[CommandType, Handler]


@dataclass(frozen=True, slots=True)
class QuotaAnnouncer:
    """Publishes ``quota.exhausted`` once per probe window when the quota gate closes."""

    key_fingerprint: str
    store: StateStore
    publisher: Publisher
    settings: Settings

    async def __call__(self, error: MsgFlashError) -> None:
        key = f"quota-exhausted:{self.key_fingerprint}:{error.code}"
        if not await self.store.first_seen(key, self.settings.relay_quota_probe_seconds):
            return
        probe = self.settings.relay_quota_probe_seconds
        event = quota_exhausted_event(
            code=error.code,
            key_fingerprint=self.key_fingerprint,
            message=error.message,
            http_status=error.http_status,
            probe_seconds=probe,
            next_probe_at=datetime.now(UTC) + timedelta(seconds=probe),
            max_wait_seconds=self.settings.relay_quota_max_wait_seconds,
        )
        try:
            await self.publisher.publish_event(event)
        except Exception:
            await self.store.forget_seen(key)
            raise


def msgflash_handlers(
    settings: Settings,
    metrics: Metrics,
    store: StateStore,
    publisher: Publisher,
    client: MsgFlashClient,
) -> Handlers:
    """Messages and campaigns share one instance resolver and one quota gate per API key."""
    resolver = InstanceResolver(
        client,
        ttl_seconds=settings.relay_instance_cache_ttl,
        default_instance=settings.relay_default_instance,
    )
    quota = QuotaGate(
        key_fingerprint=client.key_fingerprint,
        account=DEFAULT_ACCOUNT,
        probe_seconds=settings.relay_quota_probe_seconds,
        metrics=metrics,
        on_closed=QuotaAnnouncer(client.key_fingerprint, store, publisher, settings),
    )
    deadline = QuotaDeadline(max_wait_seconds=settings.relay_quota_max_wait_seconds)
    policy = settings.relay_outcome_unknown_policy
    messages = MessageHandler(client, resolver, store, quota, policy, deadline)
    campaigns = CampaignHandler(
        client, resolver, quota, settings.relay_campaign_preflight, policy, deadline
    )
    return {
        CommandType.SCHEDULE_MESSAGE: messages,
        CommandType.SEND_MESSAGE: messages,
        CommandType.CREATE_CAMPAIGN: campaigns,
    }


def tether_handlers(tether: TetherParts | None) -> Handlers:
    """Without an account the handler still takes the commands, to fail them as not
    configured rather than leave them unhandled."""
    client = tether.client if tether is not None else None
    return {CommandType.TETHER_CREATE_CAMPAIGN: TetherCampaignHandler(client)}
