"""Wiring: ``build(settings)`` makes and connects every component without any I/O;
``Relay.start`` opens them in order and ``Relay.stop`` closes them in reverse; ``run`` serves
until asked to stop, then drains.

The only place that knows how the pieces fit; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog
from aio_pika.abc import AbstractConnection
from aiohttp import web

from consumers.msgflash_campaigns import CampaignHandler
from consumers.msgflash_messages import MessageHandler
from consumers.outcomes import Handler
from consumers.pipeline import CommandPipeline, PipelineConfig
from consumers.tether_campaigns import TetherCampaignHandler
from service.bus.broker import Broker, watch_channel
from service.bus.consumer import QueueConsumer
from service.bus.publisher import Publisher
from service.bus.topology import declare_topology
from service.contract.amqp import Topology
from service.contract.commands import CommandType
from service.contract.errors import MsgFlashError
from service.contract.events import quota_exhausted_event
from service.metrics import Metrics
from service.pacing import RateLimiter, open_rate_limiter
from service.providers.common.retry import RetryPolicy
from service.providers.msgflash.client import MsgFlashClient
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.quota import QuotaGate
from service.providers.tether.client import TetherClient
from service.providers.tether.setup import tether_account, tether_sandbox_app
from service.settings import Settings
from service.state.factory import build_state_store, open_store
from service.state.store import StateStore
from service.web.app import WebDeps, create_web_app

log = structlog.get_logger("service.app")

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


def topology_for(settings: Settings) -> Topology:
    return Topology(prefix=settings.relay_exchange_prefix, retry_delays=settings.retry_delays)


def replica_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Listener:
    """An HTTP application and where it is to listen."""

    app: web.Application
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TetherParts:
    """The Tether side, when an account is configured: its client, its pacing, its sandbox."""

    client: TetherClient
    limiter: RateLimiter
    sandbox: Listener | None


@dataclass(eq=False)
class Relay:
    """Every component of one relay process, built by ``build``; started and stopped here."""

    settings: Settings
    metrics: Metrics
    topology: Topology
    store: StateStore
    limiter: RateLimiter
    client: MsgFlashClient
    publisher: Publisher
    pipeline: CommandPipeline
    consumers: tuple[QueueConsumer, ...]
    broker: Broker
    public: Listener
    sandbox: Listener | None
    webhook_secrets: list[str]
    tether: TetherParts | None = None  # None: Tether commands fail PROVIDER_NOT_CONFIGURED
    draining: bool = False
    http_port: int = 0  # where the public server listens (the bound one when 0 was asked)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def start(self, *, wait_for_broker: float | None = 30.0) -> None:
        """Open everything in order; on failure, whatever did open is closed again."""
        try:
            await self._start(wait_for_broker)
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self, wait_for_broker: float | None) -> None:
        await open_store(self.store, self.settings.relay_state_url)
        self._stack.push_async_callback(self.store.close)
        if self.sandbox is not None:
            await self._listen(self.sandbox)
            log.info("sandbox_started", url=self.settings.msgflash_url)
        self._stack.push_async_callback(self.limiter.close)
        self._stack.push_async_callback(self.client.close)
        await self._start_tether()
        self.broker.start()
        self._stack.push_async_callback(self.broker.stop)
        # Runs before the broker, client and store close: nothing may use them afterwards.
        self._stack.push_async_callback(self.pipeline.cancel_remaining)
        self.http_port = await self._listen(self.public)
        if self.sandbox is not None:
            await self._register_sandbox_webhook()
        if wait_for_broker is not None:
            await self.broker.wait_ready(wait_for_broker)
        log.info("relay_started", msgflash=self.settings.msgflash_url, http_port=self.http_port)

    async def _start_tether(self) -> None:
        if self.tether is None:
            log.info("tether_not_configured")
            return
        if self.tether.sandbox is not None:
            await self._listen(self.tether.sandbox)
            log.info("tether_sandbox_started", url=self.settings.tether_url)
        self._stack.push_async_callback(self.tether.limiter.close)
        self._stack.push_async_callback(self.tether.client.close)

    def readiness_warnings(self) -> tuple[str, ...]:
        """Refused Tether credentials fail Tether commands, not the relay: said, not failed."""
        refused = self.tether.client.auth_failed if self.tether is not None else None
        return (refused,) if refused else ()

    def add_webhook_secret(self, secret: str) -> None:
        """Accept webhooks signed with ``secret`` too (embedded sandbox, tests)."""
        if secret not in self.webhook_secrets:
            self.webhook_secrets.append(secret)

    async def readiness(self) -> dict[str, bool]:
        return {
            "broker": self.broker.connected,
            "consumers": bool(self.consumers) and all(c.active for c in self.consumers),
            "accepting": not self.draining,
            "stateStore": await self._store_answers(),
        }

    async def drain(self) -> bool:
        """Stop taking commands and let in-flight ones finish, within the drain bound."""
        self.draining = True
        for consumer in self.consumers:
            await consumer.cancel()
        finished = await self.pipeline.wait_idle(self.settings.relay_drain_seconds)
        log.info("relay_drained", finished=finished, in_flight=self.pipeline.in_flight)
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

    async def _register_sandbox_webhook(self) -> None:
        """Embedded mode: subscribe this relay to the sandbox's webhooks, as an operator would."""
        url = f"http://127.0.0.1:{self.http_port}/webhooks/msgflash"
        for hook in await self.client.list_webhooks():
            if hook.get("url") == url:
                await self.client.delete_webhook(str(hook["id"]))
        created = await self.client.register_webhook(url, WEBHOOK_EVENTS)
        self.add_webhook_secret(str(created["secret"]))
        log.info("sandbox_webhook_registered", url=url)

    async def _listen(self, listener: Listener) -> int:
        """Serve ``listener``'s app; the port it is bound to (the OS's choice when 0 is asked)."""
        family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
        sock = socket.create_server((listener.host, listener.port), family=family)
        runner = web.AppRunner(
            listener.app, access_log=None, handle_signals=False, shutdown_timeout=5
        )
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        await web.SockSite(runner, sock).start()
        return int(sock.getsockname()[1])


async def run(
    relay: Relay,
    stop: asyncio.Event,
    *,
    alongside: Callable[[Relay], Awaitable[None]] | None = None,
) -> int:
    """Start, serve until ``stop`` is set (SIGTERM/SIGINT), drain, stop; 0 when clean.

    ``alongside`` (the demo) runs as a task of this function once the broker is ready; if it
    fails, the relay stops and its error is raised; otherwise it is cancelled with the relay.
    """
    await relay.start(wait_for_broker=None)
    companion: asyncio.Task[None] | None = None
    try:
        if alongside is not None:
            companion = asyncio.create_task(_when_ready(relay, alongside), name="alongside")
            companion.add_done_callback(lambda task: _stop_if_failed(task, stop))
        await stop.wait()
        log.info("relay_draining", bound_seconds=relay.settings.relay_drain_seconds)
        await relay.drain()
    finally:
        if companion is not None:
            companion.cancel()
            await asyncio.gather(companion, return_exceptions=True)
        await relay.stop()
    failure = companion.exception() if companion and not companion.cancelled() else None
    if failure is not None:
        raise failure
    return 0


def _stop_if_failed(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    if not task.cancelled() and task.exception() is not None:
        stop.set()


async def _when_ready(relay: Relay, work: Callable[[Relay], Awaitable[None]]) -> None:
    await relay.broker.wait_ready(60)
    await work(relay)


# --- build ------------------------------------------------------------------------------------
def build(settings: Settings) -> Relay:
    """Every component, wired together; nothing is opened, connected or started (no I/O).

    A few callbacks refer to components made further down; none of them runs before
    ``Relay.start``.
    """
    metrics = Metrics()
    topology = topology_for(settings)
    store = build_state_store(
        settings.relay_state_url,
        retention_seconds=settings.relay_state_retention_seconds,
        saturated=lambda: pipeline.saturated(settings.relay_prefetch),
    )
    limiter = open_rate_limiter(settings.relay_state_url, settings.msgflash_rate_limit)
    client = MsgFlashClient.create(
        base_url=settings.msgflash_url,
        api_key=settings.api_key,
        limiter=limiter,
        policy=RetryPolicy(max_attempts=settings.relay_retry_max_attempts),
        metrics=metrics,
        timeout=settings.relay_msgflash_timeout,
    )
    publisher = Publisher(topology, metrics)
    announcer = QuotaAnnouncer(client.key_fingerprint, store, publisher, settings)
    tether = _tether(settings, metrics)
    pipeline = _pipeline(settings, topology, metrics, store, client, publisher, announcer, tether)
    consumers = (
        QueueConsumer(topology.messages_queue, settings.relay_prefetch, pipeline.on_message),
        QueueConsumer(
            topology.campaigns_queue, settings.relay_campaign_prefetch, pipeline.on_message
        ),
        # Its own queue and prefetch: a Tether outage holds at most these deliveries.
        QueueConsumer(topology.tether_queue, settings.relay_tether_prefetch, pipeline.on_message),
    )
    broker = Broker(
        settings.amqp_url.get_secret_value(),
        setups=[
            lambda connection: declare_topology(connection, topology),
            lambda connection: _attach_publisher(connection, publisher, broker),
            lambda connection: _start_consumers(connection, relay, broker),
        ],
        on_lost=lambda: _forget_channels(publisher, consumers),
    )
    webhook_secrets = list(settings.webhook_secrets)
    public = Listener(
        create_web_app(
            WebDeps(
                metrics=metrics,
                readiness=lambda: relay.readiness(),
                publisher=publisher,
                store=store,
                webhook_secrets=lambda: tuple(webhook_secrets),
                ingress_tokens=settings.ingress_tokens,
                max_body_bytes=settings.relay_max_body_bytes,
                webhook_dedupe_seconds=settings.relay_webhook_dedupe_seconds,
                readiness_warnings=lambda: relay.readiness_warnings(),
            )
        ),
        settings.relay_http_host,
        settings.relay_http_port,
    )
    relay = Relay(
        settings=settings,
        metrics=metrics,
        topology=topology,
        store=store,
        limiter=limiter,
        client=client,
        publisher=publisher,
        pipeline=pipeline,
        consumers=consumers,
        broker=broker,
        public=public,
        sandbox=_sandbox(settings),
        webhook_secrets=webhook_secrets,
        tether=tether,
    )
    return relay


@dataclass(frozen=True, slots=True)
class QuotaAnnouncer:
    """Publishes ``quota.exhausted`` once per probe window when the quota gate closes."""

    key_fingerprint: str
    store: StateStore
    publisher: Publisher
    settings: Settings

    async def __call__(self, error: MsgFlashError) -> None:
        key = f"quota-exhausted:{self.key_fingerprint}:{error.code}"
        if not await self.store.first_seen(key, self.settings.relay_quota_probe_seconds):
            return
        event = quota_exhausted_event(
            code=error.code, key_fingerprint=self.key_fingerprint, message=error.message
        )
        try:
            await self.publisher.publish_event(event)
        except Exception:
            await self.store.forget_seen(key)
            raise


def _pipeline(
    settings: Settings,
    topology: Topology,
    metrics: Metrics,
    store: StateStore,
    client: MsgFlashClient,
    publisher: Publisher,
    announcer: QuotaAnnouncer,
    tether: TetherParts | None,
) -> CommandPipeline:
    resolver = InstanceResolver(
        client,
        ttl_seconds=settings.relay_instance_cache_ttl,
        default_instance=settings.relay_default_instance,
    )
    quota = QuotaGate(
        key_fingerprint=client.key_fingerprint,
        probe_seconds=settings.relay_quota_probe_seconds,
        metrics=metrics,
        on_closed=announcer,
    )
    messages = MessageHandler(client, resolver, store, quota, settings.relay_outcome_unknown_policy)
    campaigns = CampaignHandler(client, resolver, quota, settings.relay_campaign_preflight)
    handlers: dict[CommandType, Handler] = {
        CommandType.SCHEDULE_MESSAGE: messages,
        CommandType.SEND_MESSAGE: messages,
        CommandType.CREATE_CAMPAIGN: campaigns,
        CommandType.TETHER_CREATE_CAMPAIGN: TetherCampaignHandler(
            tether.client if tether is not None else None
        ),
    }
    return CommandPipeline(
        handlers=handlers,
        publisher=publisher,
        store=store,
        metrics=metrics,
        config=PipelineConfig(
            owner=replica_identity(),
            max_body_bytes=settings.relay_max_body_bytes,
            lease_seconds=settings.relay_lease_seconds,
            retry_tiers=len(topology.retry_tiers),
        ),
    )


def _tether(settings: Settings, metrics: Metrics) -> TetherParts | None:
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
    sandbox = tether_sandbox_app(settings)
    listener = (
        Listener(sandbox, "127.0.0.1", settings.relay_tether_sandbox_port) if sandbox else None
    )
    return TetherParts(client, limiter, listener)


def _sandbox(settings: Settings) -> Listener | None:
    if not settings.relay_sandbox:
        return None
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.msgflash.sandbox.app import create_sandbox_app
    from service.providers.msgflash.sandbox.config import SandboxConfig

    app = create_sandbox_app(SandboxConfig(api_keys=(settings.api_key,)))
    return Listener(app, "127.0.0.1", settings.relay_sandbox_port)


async def _attach_publisher(
    connection: AbstractConnection, publisher: Publisher, broker: Broker
) -> None:
    channel = await publisher.attach(connection)
    watch_channel(channel, broker, "publisher")


async def _start_consumers(connection: AbstractConnection, relay: Relay, broker: Broker) -> None:
    if relay.draining:
        return
    for consumer in relay.consumers:
        channel = await consumer.start(connection)
        watch_channel(channel, broker, consumer.queue)


def _forget_channels(publisher: Publisher, consumers: tuple[QueueConsumer, ...]) -> None:
    publisher.detach()
    for consumer in consumers:
        consumer.forget()
