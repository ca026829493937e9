"""The running sandbox's parts in one place, reachable from a request by one typed app key."""

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
from service.providers.msgflash.sandbox.lifecycle import MessageLifecycle
from service.providers.msgflash.sandbox.limits import PlanGate, RateLimiter
from service.providers.msgflash.sandbox.requestlog import RequestLog
from service.providers.msgflash.sandbox.seed import SeedData, default_seed
from service.providers.msgflash.sandbox.state import SandboxState, build_state


@dataclass
class Sandbox:
    config: SandboxConfig
    gate: PlanGate
    state: SandboxState
    request_log: RequestLog
    faults: FaultInjector
    limiter: RateLimiter | None  # None: no per-second limit (benchmarks)
    dispatcher: WebhookDispatcher
    lifecycle: MessageLifecycle
    clock: Callable[[], float] = field(default=time.time)
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set when the app shuts down

    def seed(self) -> SeedData:
        return self.config.seed if self.config.seed is not None else default_seed()

    def emit(self, payload: dict[str, Any]) -> None:
        """Send a webhook event to every endpoint subscribed to it."""
        self.dispatcher.emit(payload, self.state.webhooks.values())

    async def reset(self) -> None:
        """Back to the seed: records, plan, usage, log, faults and deliveries."""
        self.lifecycle.reset()
        await self.dispatcher.reset()
        self.state = build_state(self.seed(), self.config.plan, self.clock())
        self.request_log.clear()
        self.faults.clear()
        if self.limiter is not None:
            self.limiter.clear()


SANDBOX = web.AppKey("sandbox", Sandbox)


def sandbox_of(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]
