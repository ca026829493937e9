"""The Tether side of one relay, made from the ``TETHER_*`` settings: the account, its paced
client and, with ``RELAY_SANDBOX=1``, the simulator to serve beside it. None of it when no
account is configured.

No I/O here beyond what ``TetherClient.create`` needs (a session made in the running loop).
What turns these parts into a command handler lives with the relay's wiring, since providers
may not import the consumers.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from service.metrics import Metrics
from service.pacing import RateLimiter, open_rate_limiter
from service.providers.common.retry import RetryPolicy
from service.providers.tether.account import TetherAccount, TetherCredentials
from service.providers.tether.client import TetherClient
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class TetherParts:
    """The client, the pacing it waits on, and the embedded sandbox's app when asked for."""

    client: TetherClient
    limiter: RateLimiter
    sandbox: web.Application | None


def tether_parts(settings: Settings, metrics: Metrics) -> TetherParts | None:
    """The Tether side; None when no account is configured (its commands then fail
    PROVIDER_NOT_CONFIGURED)."""
    account = tether_account(settings)
    if account is None:
        return None
    limiter = open_rate_limiter(settings.relay_state_url, account.rate_limit)
    client = TetherClient.create(
        account=account,
        limiter=limiter,
        policy=RetryPolicy(max_attempts=settings.relay_retry_max_attempts),
        metrics=metrics,
        timeout=settings.relay_tether_timeout,
    )
    return TetherParts(client, limiter, tether_sandbox_app(settings))


def tether_account(settings: Settings) -> TetherAccount | None:
    """The one Tether account of the settings; None when Tether is not configured.

    With the embedded sandbox and no credentials of its own, the sandbox's public login is used.
    """
    base_url = settings.tether_url
    secrets = settings.tether_api_token, settings.tether_email, settings.tether_password
    token, email, password = (v.get_secret_value() if v is not None else None for v in secrets)
    if base_url is None:
        return None
    if token is None and (email is None or password is None):
        if not settings.relay_sandbox:
            return None
        from service.providers.tether.sandbox.config import DEFAULT_EMAIL, DEFAULT_PASSWORD

        email, password = DEFAULT_EMAIL, DEFAULT_PASSWORD
    credentials = TetherCredentials(api_token=token, email=email, password=password)
    return TetherAccount("default", base_url, credentials, settings.tether_rate_limit)


def tether_sandbox_app(settings: Settings) -> web.Application | None:
    """RELAY_SANDBOX=1 without a TETHER_BASE_URL: the simulator, to serve in-process."""
    if not settings.relay_sandbox or settings.tether_base_url is not None:
        return None
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.tether.sandbox.app import create_tether_sandbox_app

    return create_tether_sandbox_app()
