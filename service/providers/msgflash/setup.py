"""The MsgFlash side of one relay, made from its accounts: per account a paced client of its
own (its key, base URL and rate) and, with ``RELAY_SANDBOX=1``, the simulator to serve beside
them, which accepts every account's key.

No I/O here: each client makes its session on first use and the relay serves the sandbox. What
turns these parts into command handlers lives with the relay's wiring, since providers may not
import the consumers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from service.accounts import MsgFlashAccount
from service.metrics import Metrics
from service.pacing import RateLimiter, open_rate_limiter
from service.providers.common.retry import RetryPolicy
from service.providers.msgflash.client import MsgFlashClient
from service.settings import DEFAULT_ACCOUNT, Settings
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

    @property
    def client(self) -> MsgFlashClient:
        """Account ``default``'s client (the embedded sandbox's webhook is registered with
        it), or the first account's when the file has no ``default``."""
        parts = self.accounts.get(DEFAULT_ACCOUNT) or next(iter(self.accounts.values()))
        return parts.client


def msgflash_parts(
    settings: Settings,
    metrics: Metrics,
    accounts: Mapping[str, MsgFlashAccount],
    tracing: Tracing,
) -> MsgFlashParts:
    parts = {name: _account_parts(settings, metrics, a, tracing) for name, a in accounts.items()}
    keys = tuple(account.api_key for account in accounts.values())
    return MsgFlashParts(parts, msgflash_sandbox_app(settings, keys))


def _account_parts(
    settings: Settings, metrics: Metrics, account: MsgFlashAccount, tracing: Tracing
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
    )
    return MsgFlashAccountParts(account, client, limiter)


def msgflash_sandbox_app(settings: Settings, api_keys: tuple[str, ...]) -> web.Application | None:
    """RELAY_SANDBOX=1: the simulator, accepting every account's key (each key is paced by
    the sandbox's limiter on its own, as MsgFlash does)."""
    if not settings.relay_sandbox:
        return None
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.msgflash.sandbox.app import create_sandbox_app
    from service.providers.msgflash.sandbox.config import SandboxConfig

    return create_sandbox_app(SandboxConfig(api_keys=tuple(dict.fromkeys(api_keys))))
