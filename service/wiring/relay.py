"""One relay process's components and their lifecycle: ``Relay.start`` opens them in order,
``drain`` lets in-flight commands finish, ``stop`` closes everything in reverse.

Made by ``service.app.build``, which knows how the pieces fit; this module only knows the
order they open and close in, and what readiness means.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog

from consumers.pipeline import CommandPipeline
from service.bus.broker import Broker
from service.bus.consumer import QueueConsumer
from service.bus.publisher import Publisher
from service.contract.amqp import Topology
from service.contract.errors import ConfigError, TopologyConflict
from service.metrics import Metrics
from service.providers.msgflash.setup import MsgFlashParts
from service.providers.tether.setup import TetherSide
from service.settings import DEFAULT_ACCOUNT, Settings
from service.state.factory import open_store
from service.state.store import StateStore
from service.tracing.spans import Tracing
from service.web.listener import Listener, cannot_listen
from service.web.server import serve

log = structlog.get_logger("service.wiring.relay")

WEBHOOK_EVENTS = (
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "instance.connected",
    "instance.disconnected",
)

# How long readiness waits for the state store's answer before reporting it unready.
STORE_PING_SECONDS = 2.0
# The embedded sandboxes listen on loopback only: they accept any well-formed request.
SANDBOX_HOST = "127.0.0.1"


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@dataclass(eq=False)
class Relay:
    """Every component of one relay process, built by ``build``; started and stopped here."""

    settings: Settings
    metrics: Metrics
    topology: Topology
    store: StateStore
    msgflash: MsgFlashParts
    publisher: Publisher
    pipeline: CommandPipeline
    consumers: tuple[QueueConsumer, ...]
    broker: Broker
    public: Listener
    admin: Listener
    webhook_secrets: dict[str, list[str]]  # by account name

    tracing: Tracing = field(default_factory=Tracing)
    tether: TetherSide | None = None  # no accounts: Tether commands fail PROVIDER_NOT_CONFIGURED
    draining: bool = False
    http_port: int = 0  # where the public server listens (the bound one when 0 was asked)
    admin_port: int = 0  # where the admin server listens
    _store_answered: bool = True  # the state store's answer to the latest readiness probe
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def start(self, *, wait_for_broker: float | None = 30.0) -> None:
        """Open everything in order; on failure, whatever did open is closed again."""
        try:
            await self._start(wait_for_broker)
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self, wait_for_broker: float | None) -> None:
        self.tracing.start()
        # Closed last: the spans of everything stopping before it are flushed (off the loop).
        self._stack.push_async_callback(asyncio.to_thread, self.tracing.stop)
        await open_store(self.store, self.settings.state_url)
        self._stack.push_async_callback(self.store.close)
        await self._start_msgflash()
        await self._start_tether()
        self.broker.start()
        self._stack.push_async_callback(self.broker.stop)
        # Runs before the broker, client and store close: nothing may use them afterwards.
        self._stack.push_async_callback(self.pipeline.cancel_remaining)
        self.admin_port = await self._listen(self.admin)
        self.http_port = await self._listen(self.public)
        for name in self.msgflash.sandboxed:
            await self._register_sandbox_webhook(name)
        if wait_for_broker is not None:
            await self.broker.wait_ready(wait_for_broker)
            self._announce_started()
        else:
            announcer = asyncio.create_task(self._announce_once_consuming(), name="announcer")
            self._stack.push_async_callback(_cancel, announcer)

    async def _announce_once_consuming(self) -> None:
        """``relay_started`` means consuming: said once the broker is set up, not before."""
        with contextlib.suppress(TopologyConflict):  # fatal, and logged by the broker
            await self.broker.wait_ready(None)
            self._announce_started()

    def _announce_started(self) -> None:
        log.info(
            "relay_started",
            msgflash=self.settings.msgflash_url,
            httpPort=self.http_port,
            adminPort=self.admin_port,
            queues=[consumer.queue for consumer in self.consumers],
        )

    async def _start_msgflash(self) -> None:
        if self.msgflash.sandbox is not None:
            port = self.settings.relay_sandbox_port
            sandbox = Listener(self.msgflash.sandbox, SANDBOX_HOST, port, "RELAY_SANDBOX_PORT")
            await self._listen(sandbox)
            log.info("sandbox_started", url=self.settings.msgflash_url)
        for parts in self.msgflash.accounts.values():
            self._stack.push_async_callback(parts.limiter.close)
            self._stack.push_async_callback(parts.client.close)

    async def _start_tether(self) -> None:
        if self.tether is None:
            return
        if not self.tether.accounts:
            log.info("tether_not_configured")
        if self.tether.sandbox is not None:
            port = self.settings.relay_tether_sandbox_port
            setting = "RELAY_TETHER_SANDBOX_PORT"
            await self._listen(Listener(self.tether.sandbox, SANDBOX_HOST, port, setting))
            log.info("tether_sandbox_started", url=self.settings.tether_url)
        for parts in self.tether.accounts.values():
            self._stack.push_async_callback(parts.limiter.close)
            self._stack.push_async_callback(parts.client.close)

    def readiness_warnings(self) -> tuple[str, ...]:
        """Refused Tether credentials fail Tether commands, not the relay: said, not failed."""
        tether = self.tether.accounts.values() if self.tether is not None else ()
        return tuple(refused for parts in tether if (refused := parts.client.auth_failed))

    def add_webhook_secret(self, secret: str, account: str = DEFAULT_ACCOUNT) -> None:
        """Accept ``account``'s webhooks signed with ``secret`` too (embedded sandbox, tests)."""
        known = self.webhook_secrets.setdefault(account, [])
        if secret not in known:
            known.append(secret)

    async def readiness(self) -> dict[str, bool]:
        self._store_answered = await self._store_answers()
        return self._checks()

    @property
    def ready(self) -> bool:
        """What /readyz answers, without asking the state store again: cheap enough for every
        scrape, so ``relay_ready`` is right even when nobody probes."""
        return all(self._checks().values())

    def _checks(self) -> dict[str, bool]:
        return {
            "broker": self.broker.connected,
            "consumers": bool(self.consumers) and all(c.active for c in self.consumers),
            "accepting": not self.draining,
            "stateStore": self._store_answered,
        }

    async def drain(self) -> bool:
        """Stop taking commands and let in-flight ones finish, within the drain bound."""
        self.draining = True
        for consumer in self.consumers:
            await consumer.cancel()
        finished = await self.pipeline.wait_idle(self.settings.relay_drain_seconds)
        log.info("relay_drained", finished=finished, inFlight=self.pipeline.in_flight)
        return finished

    async def stop(self) -> None:
        await self._stack.aclose()
        log.info("relay_stopped")

    async def _store_answers(self) -> bool:
        try:
            async with asyncio.timeout(STORE_PING_SECONDS):
                await self.store.ping()
        except Exception as exc:  # any failure means "not ready"; it is logged, never raised
            log.warning("state_store_unready", error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    async def _register_sandbox_webhook(self, account: str) -> None:
        """Embedded mode: subscribe this relay to ``account``'s webhooks at the sandbox, on
        the account's own path, as an operator would for each account."""
        client = self.msgflash.accounts[account].client
        path = "" if account == DEFAULT_ACCOUNT else f"/{account}"
        url = f"http://127.0.0.1:{self.http_port}/webhooks/msgflash{path}"
        for hook in await client.list_webhooks():
            if hook.get("url") == url:
                await client.delete_webhook(str(hook["id"]))
        created = await client.register_webhook(url, WEBHOOK_EVENTS)
        self.add_webhook_secret(str(created["secret"]), account)
        log.info("sandbox_webhook_registered", url=url, account=account)

    async def _listen(self, listener: Listener) -> int:
        """Serve ``listener``'s app; the port it is bound to (the OS's choice when 0 is asked)."""
        try:
            served = await serve(listener.app, listener.host, listener.port, listener.limits)
        except OSError as exc:
            raise ConfigError(cannot_listen(listener, exc)) from None
        self._stack.push_async_callback(served.runner.cleanup)
        return served.port
