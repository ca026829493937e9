"""The Tether side of one relay, made from its Tether accounts: per account (organisation) a
paced client of its own and, with ``RELAY_SANDBOX=1``, the simulator to serve beside them, with
an organisation of its own for each account that calls it.

No I/O here: each client makes its session on first use. What turns these parts into command
handlers lives with the relay's wiring, since providers may not import the consumers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    resolved = [tether_account(settings, account) for account in configured.values()]
    usable = [account for account in resolved if account is not None]
    parts = {a.name: _account_parts(settings, metrics, a, tracing) for a in usable}
    sandbox = None
    if settings.relay_sandbox and settings.tether_base_url is None:
        sandbox = tether_sandbox_app(a for a in usable if a.base_url == settings.tether_url)
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

    With the embedded sandbox, an account without credentials of its own uses the login the
    sandbox keeps for it, and one without a base URL the sandbox's.
    """
    base_url = configured.base_url or (settings.tether_url if settings.relay_sandbox else None)
    if base_url is None:
        return None
    token, email, password = configured.api_token, configured.email, configured.password
    if token is None and (email is None or password is None):
        if not settings.relay_sandbox:
            return None
        from service.providers.tether.sandbox.embedded import sandbox_login

        email, password = sandbox_login(configured.name)
    credentials = TetherCredentials(api_token=token, email=email, password=password)
    return TetherAccount(configured.name, base_url, credentials, configured.rate_limit)


def tether_sandbox_app(accounts: Iterable[TetherAccount]) -> web.Application:
    """RELAY_SANDBOX=1 without a TETHER_BASE_URL: the simulator, to serve in-process, with an
    organisation per account calling it. Accounts with the same token or login share one
    (the first names it), as they would on Tether."""
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.tether.sandbox.app import create_tether_sandbox_app
    from service.providers.tether.sandbox.config import SandboxOrganization, TetherSandboxConfig
    from service.providers.tether.sandbox.embedded import relay_organization

    organizations: dict[str, SandboxOrganization] = {}
    for account in accounts:
        found = account.credentials
        opened_by = found.api_token or found.email or account.name
        if opened_by not in organizations:
            organizations[opened_by] = relay_organization(
                account.name, api_token=found.api_token, email=found.email, password=found.password
            )
    config = TetherSandboxConfig(organizations=tuple(organizations.values()))
    return create_tether_sandbox_app(config)
