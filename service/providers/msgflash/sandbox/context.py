"""The running sandbox's parts in one place, reachable from a request by one typed app key;
the account a request was admitted for, by one typed request key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from service.providers.msgflash.sandbox.config import SandboxConfig
from service.providers.msgflash.sandbox.delivery import WebhookDispatcher
from service.providers.msgflash.sandbox.faults import FaultInjector
from service.providers.msgflash.sandbox.keyring import KeyRing
from service.providers.msgflash.sandbox.lifecycle import MessageLifecycle
from service.providers.msgflash.sandbox.limits import PlanGate, RateLimiter
from service.providers.msgflash.sandbox.requestlog import RequestLog
from service.providers.msgflash.sandbox.seed import default_seed
from service.providers.msgflash.sandbox.state import SandboxState, build_state


def account_states(config: SandboxConfig, now: float) -> dict[str, SandboxState]:
    """Every account's state from its seed, by name, in the config's order."""
    return {
        account.name: build_state(
            account.name, account.seed or default_seed(), account.plan or config.plan, now
        )
        for account in config.sandbox_accounts()
    }


@dataclass
class Sandbox:
    config: SandboxConfig
    gate: PlanGate
    accounts: dict[str, SandboxState]  # by name; a key sees only its own account's state
    keys: KeyRing
    request_log: RequestLog
    faults: FaultInjector
    limiter: RateLimiter | None  # None: no per-second limit (benchmarks)
    dispatcher: WebhookDispatcher
    lifecycle: MessageLifecycle
    clock: Callable[[], float] = field(default=time.time)
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set when the app shuts down

    def emit(self, state: SandboxState, payload: dict[str, Any]) -> None:
        """Send a webhook event to every endpoint of ``state``'s account subscribed to it."""
        self.dispatcher.emit(payload, state.webhooks.values(), account=state.name)

    async def reset(self) -> None:
        """Back to the seed: every account's records, plan and usage; log, faults, deliveries."""
        self.lifecycle.reset()
        await self.dispatcher.reset()
        self.accounts = account_states(self.config, self.clock())
        self.request_log.clear()
        self.faults.clear()
        if self.limiter is not None:
            self.limiter.clear()


SANDBOX = web.AppKey("sandbox", Sandbox)
ACCOUNT = web.RequestKey("sandbox_account", SandboxState)


def sandbox_of(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]


def state_of(request: web.Request) -> SandboxState:
    """The state of the account whose key the request was admitted with (set on admission)."""
    return request[ACCOUNT]
