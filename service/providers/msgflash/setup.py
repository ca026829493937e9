"""The MsgFlash side of one relay, made from its accounts: per account a paced client of its
own (its key, base URL and rate) and, with ``RELAY_SANDBOX=1``, the simulator to serve beside
them, where each account's key opens a sandbox account of its own.

No I/O here: each client makes its session on first use and the relay serves the sandbox. What
turns these parts into command handlers lives with the relay's wiring, since providers may not
import the consumers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

from service.accounts import MsgFlashAccount
from service.metrics import Metrics
from service.pacing import RateLimiter, open_rate_limiter
from service.providers.common.retry import RetryPolicy
from service.providers.msgflash.client import MsgFlashClient
from service.providers.msgflash.reconcile import Attribution
from service.settings import Settings
from service.tracing.spans import Tracing


@dataclass(frozen=True, slots=True)
class MsgFlashAccountParts:
    """One account's client and the pacing it waits on (its own rate, its own key)."""

    account: MsgFlashAccount
    client: MsgFlashClient
    limiter: RateLimiter


@dataclass(frozen=True, slots=True)
class MsgFlashParts:
    """Every account's parts by name, and the embedded sandbox's app when asked for."""

    accounts: Mapping[str, MsgFlashAccountParts]
    sandbox: web.Application | None
    # The accounts that own an account of the embedded sandbox: each registers its webhooks
    # there for itself (an account sharing another's key does not, or events would come twice).
    sandboxed: tuple[str, ...] = ()


def msgflash_parts(
    settings: Settings,
    metrics: Metrics,
    accounts: Mapping[str, MsgFlashAccount],
    tracing: Tracing,
    attribution: Attribution | None = None,
) -> MsgFlashParts:
    """``attribution`` (the state store's) lets an unanswered send of one content among many
    take one listed message as its own (``reconcile``)."""
    parts = {
        name: _account_parts(settings, metrics, a, tracing, attribution)
        for name, a in accounts.items()
    }
    if not settings.relay_sandbox:
        return MsgFlashParts(parts, None)
    owners = sandbox_owners(a for a in accounts.values() if a.base_url == settings.msgflash_url)
    return MsgFlashParts(parts, msgflash_sandbox_app(owners), tuple(a.name for a in owners))


def _account_parts(
    settings: Settings,
    metrics: Metrics,
    account: MsgFlashAccount,
    tracing: Tracing,
    attribution: Attribution | None,
) -> MsgFlashAccountParts:
    limiter = open_rate_limiter(settings.state_url, account.rate_limit)
    client = MsgFlashClient.create(
        base_url=account.base_url,
        api_key=account.api_key,
        account=account.name,
        limiter=limiter,
        policy=RetryPolicy(max_attempts=settings.relay_retry_max_attempts),
        metrics=metrics,
        timeout=settings.relay_msgflash_timeout,
        tracing=tracing,
        attribution=attribution,
    )
    return MsgFlashAccountParts(account, client, limiter)


def sandbox_owners(accounts: Iterable[MsgFlashAccount]) -> tuple[MsgFlashAccount, ...]:
    """One account per API key: the first account with a key owns its sandbox account and
    names it; later ones with the same key share it."""
    owners: dict[str, MsgFlashAccount] = {}
    for account in accounts:
        owners.setdefault(account.api_key, account)
    return tuple(owners.values())


def msgflash_sandbox_app(owners: tuple[MsgFlashAccount, ...]) -> web.Application:
    """RELAY_SANDBOX=1: the simulator, with a sandbox account per owner (the accounts calling
    it, one per key), so each account's data, quotas and webhooks stay its own, as on
    MsgFlash; each key is paced by the sandbox's limiter on its own."""
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.msgflash.sandbox.app import create_sandbox_app
    from service.providers.msgflash.sandbox.config import SandboxAccount, SandboxConfig

    accounts = tuple(SandboxAccount(name=o.name, api_keys=(o.api_key,)) for o in owners)
    return create_sandbox_app(SandboxConfig(accounts=accounts))
