"""The Tether side of one relay, made from its Tether accounts: per account (organisation) a
paced client of its own and, with ``RELAY_SANDBOX=1``, the simulator to serve beside them.

No I/O here: each client makes its session on first use. What turns these parts into command
handlers lives with the relay's wiring, since providers may not import the consumers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from service import accounts
from service.metrics import Metrics
from service.pacing import RateLimiter, open_rate_limiter
from service.providers.common.retry import RetryPolicy
from service.providers.tether.account import TetherAccount, TetherCredentials
from service.providers.tether.client import TetherClient
from service.settings import Settings
from service.tracing.spans import Tracing


@dataclass(frozen=True, slots=True)
class TetherParts:
    """One account's client and the pacing it waits on."""

    client: TetherClient
    limiter: RateLimiter


@dataclass(frozen=True, slots=True)
class TetherSide:
    """Every Tether account's parts by name (none: Tether commands fail
    PROVIDER_NOT_CONFIGURED), and the embedded sandbox's app when asked for."""

    accounts: Mapping[str, TetherParts]
    sandbox: web.Application | None


def tether_side(
    settings: Settings,
    metrics: Metrics,
    configured: Mapping[str, accounts.TetherAccount],
    tracing: Tracing,
) -> TetherSide:
    sandbox = tether_sandbox_app(settings)
    parts: dict[str, TetherParts] = {}
    for name, configured_account in configured.items():
        account = tether_account(settings, configured_account)
        if account is not None:
            parts[name] = _account_parts(settings, metrics, account, tracing)
    return TetherSide(parts, sandbox)


def _account_parts(
    settings: Settings, metrics: Metrics, account: TetherAccount, tracing: Tracing
) -> TetherParts:
    limiter = open_rate_limiter(settings.state_url, account.rate_limit)
    client = TetherClient.create(
        account=account,
        limiter=limiter,
        policy=RetryPolicy(max_attempts=settings.relay_retry_max_attempts),
        metrics=metrics,
        timeout=settings.relay_tether_timeout,
        tracing=tracing,
    )
    return TetherParts(client, limiter)


def tether_account(settings: Settings, configured: accounts.TetherAccount) -> TetherAccount | None:
    """The client's view of a configured account; None when it has no base URL (not sandboxed).

    With the embedded sandbox, an account without credentials of its own uses the sandbox's
    public login, and one without a base URL the sandbox's.
    """
    base_url = configured.base_url or (settings.tether_url if settings.relay_sandbox else None)
    if base_url is None:
        return None
    token, email, password = configured.api_token, configured.email, configured.password
    if token is None and (email is None or password is None):
        if not settings.relay_sandbox:
            return None
        from service.providers.tether.sandbox.config import DEFAULT_EMAIL, DEFAULT_PASSWORD

        email, password = DEFAULT_EMAIL, DEFAULT_PASSWORD
    credentials = TetherCredentials(api_token=token, email=email, password=password)
    return TetherAccount(configured.name, base_url, credentials, configured.rate_limit)


def tether_sandbox_app(settings: Settings) -> web.Application | None:
    """RELAY_SANDBOX=1 without a TETHER_BASE_URL: the simulator, to serve in-process."""
    if not settings.relay_sandbox or settings.tether_base_url is not None:
        return None
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.tether.sandbox.app import create_tether_sandbox_app

    return create_tether_sandbox_app()
