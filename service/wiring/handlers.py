"""Which handler takes which command type, made from each provider's parts.

Here and not in the providers' ``setup`` modules: handlers live in ``consumers``, which sit
above the providers, so a provider may not build them. One function per provider keeps what
each one needs (MsgFlash's instance resolver and quota gate, Tether's client) side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from consumers.accounts import by_account
from consumers.msgflash_campaigns import CampaignHandler
from consumers.msgflash_messages import MessageHandler
from consumers.outcomes import Handler, QuotaDeadline
from consumers.tether_campaigns import TetherCampaignHandler
from service.bus.publisher import Publisher
from service.contract.commands import CommandType
from service.contract.errors import MsgFlashError
from service.contract.events import quota_exhausted_event
from service.metrics import Metrics
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.quota import QuotaGate
from service.providers.msgflash.setup import MsgFlashAccountParts, MsgFlashParts
from service.providers.tether.setup import TetherSide
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
    account: str = DEFAULT_ACCOUNT

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
            account=self.account,
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
    msgflash: MsgFlashParts,
) -> Handlers:
    """Every MsgFlash account's handlers, chosen by the command's account."""
    per_account = {
        name: _account_handlers(settings, metrics, store, publisher, parts)
        for name, parts in msgflash.accounts.items()
    }
    return by_account("msgflash", per_account)


def _account_handlers(
    settings: Settings,
    metrics: Metrics,
    store: StateStore,
    publisher: Publisher,
    parts: MsgFlashAccountParts,
) -> Handlers:
    """Messages and campaigns of one account share its instance resolver (its own cache and
    default instance) and its quota gate."""
    account, client = parts.account, parts.client
    resolver = InstanceResolver(
        client,
        ttl_seconds=settings.relay_instance_cache_ttl,
        default_instance=account.default_instance,
    )
    announcer = QuotaAnnouncer(client.key_fingerprint, store, publisher, settings, account.name)
    quota = QuotaGate(
        key_fingerprint=client.key_fingerprint,
        account=account.name,
        probe_seconds=settings.relay_quota_probe_seconds,
        metrics=metrics,
        on_closed=announcer,
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


def tether_handlers(tether: TetherSide, names: tuple[str, ...]) -> Handlers:
    """Every Tether account's handler. An account named but not usable (no base URL or
    credentials), and ``default`` when no Tether account is, still takes its commands, to fail
    them as not configured rather than as an unknown account."""
    per_account: dict[str, Handlers] = {}
    for name in dict.fromkeys((*names, DEFAULT_ACCOUNT)):
        parts = tether.accounts.get(name)
        client = parts.client if parts is not None else None
        per_account[name] = {CommandType.TETHER_CREATE_CAMPAIGN: TetherCampaignHandler(client)}
    return by_account("tether", per_account)
