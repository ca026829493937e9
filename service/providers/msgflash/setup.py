"""The MsgFlash side of one relay, made from the settings: its paced client and, with
``RELAY_SANDBOX=1``, the simulator to serve beside it.

No I/O here: the client makes its session on first use and the relay serves the sandbox. What
turns these parts into command handlers lives with the relay's wiring, since providers may not
import the consumers.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from service.metrics import Metrics
from service.pacing import RateLimiter, open_rate_limiter
from service.providers.common.retry import RetryPolicy
from service.providers.msgflash.client import MsgFlashClient
from service.settings import Settings
from service.tracing.spans import Tracing


@dataclass(frozen=True, slots=True)
class MsgFlashParts:
    """The client, the pacing it waits on, and the embedded sandbox's app when asked for."""

    client: MsgFlashClient
    limiter: RateLimiter
    sandbox: web.Application | None


def msgflash_parts(settings: Settings, metrics: Metrics, tracing: Tracing) -> MsgFlashParts:
    limiter = open_rate_limiter(settings.relay_state_url, settings.msgflash_rate_limit)
    client = MsgFlashClient.create(
        base_url=settings.msgflash_url,
        api_key=settings.api_key,
        limiter=limiter,
        policy=RetryPolicy(max_attempts=settings.relay_retry_max_attempts),
        metrics=metrics,
        timeout=settings.relay_msgflash_timeout,
        tracing=tracing,
    )
    return MsgFlashParts(client, limiter, msgflash_sandbox_app(settings))


def msgflash_sandbox_app(settings: Settings) -> web.Application | None:
    """RELAY_SANDBOX=1: the simulator, accepting the relay's own key."""
    if not settings.relay_sandbox:
        return None
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.msgflash.sandbox.app import create_sandbox_app
    from service.providers.msgflash.sandbox.config import SandboxConfig

    return create_sandbox_app(SandboxConfig(api_keys=(settings.api_key,)))
