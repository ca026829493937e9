"""Builds the sandbox as an aiohttp application: routes, middlewares and owned tasks.

The message lifecycle and webhook deliveries are started with the app and stopped with
it (a cleanup context), so an embedded or test sandbox leaves no task behind.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from service.providers.msgflash.sandbox import (
    account,
    admin,
    campaigns,
    contacts,
    groups,
    instances,
    messages,
    templates,
    webhooks,
)
from service.providers.msgflash.sandbox.config import SandboxConfig
from service.providers.msgflash.sandbox.context import SANDBOX, Sandbox, account_states
from service.providers.msgflash.sandbox.delivery import WebhookDispatcher
from service.providers.msgflash.sandbox.faults import FaultInjector
from service.providers.msgflash.sandbox.keyring import KeyRing
from service.providers.msgflash.sandbox.lifecycle import MessageLifecycle
from service.providers.msgflash.sandbox.limits import PlanGate, RateLimiter
from service.providers.msgflash.sandbox.middleware import serve_requests
from service.providers.msgflash.sandbox.requestlog import RequestLog


def build_sandbox(config: SandboxConfig) -> Sandbox:
    """Every part of a sandbox, wired from its config; nothing runs until the app starts."""
    clock = time.time
    dispatcher = WebhookDispatcher(
        max_attempts=config.webhook_max_attempts,
        retry_base_seconds=config.webhook_retry_base_seconds,
        timeout_seconds=config.webhook_timeout_seconds,
        log_limit=config.request_log_limit,
        clock=clock,
    )
    faults = FaultInjector()
    faults.configure(config.faults)
    limiter = None
    if config.rate_limit_per_second is not None:
        limiter = RateLimiter(config.rate_limit_per_second, config.rate_limit_window)
    sandbox = Sandbox(
        config=config,
        gate=PlanGate(config.plan_table()),
        accounts=account_states(config, clock()),
        keys=KeyRing(config.sandbox_accounts()),
        request_log=RequestLog(config.request_log_limit),
        faults=faults,
        limiter=limiter,
        dispatcher=dispatcher,
        lifecycle=MessageLifecycle(
            state=lambda name: sandbox.accounts.get(name),
            dispatcher=dispatcher,
            step_seconds=config.lifecycle_step_seconds,
            clock=clock,
        ),
        clock=clock,
    )
    return sandbox


def create_sandbox_app(config: SandboxConfig | None = None) -> web.Application:
    sandbox = build_sandbox(config or SandboxConfig())
    app = web.Application(middlewares=[serve_requests])
    app[SANDBOX] = sandbox
    router = app.router
    # Groups first: /contacts/groups would otherwise match /contacts/{id}.
    for module in (groups, contacts, instances, messages, templates, webhooks):
        module.add_routes(router)
    campaigns.add_routes(router, with_list=sandbox.config.campaign_list)
    account.add_routes(router)
    admin.add_routes(router)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_release_hanging_requests)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    sandbox = app[SANDBOX]
    await sandbox.dispatcher.start()
    await sandbox.lifecycle.start()
    yield
    await sandbox.lifecycle.close()
    await sandbox.dispatcher.close()


async def _release_hanging_requests(app: web.Application) -> None:
    app[SANDBOX].closing.set()
