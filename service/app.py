"""Wiring: ``build(settings)`` makes and connects every component without any I/O;
``Relay.start`` opens them in order and ``Relay.stop`` closes them in reverse; ``run`` serves
until asked to stop, then drains.

The only place that knows how the pieces fit; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog
from aio_pika.abc import AbstractConnection

from consumers.msgflash_campaigns import CampaignHandler
from consumers.msgflash_messages import MessageHandler
from consumers.outcomes import Handler
from consumers.pipeline import CommandPipeline, PipelineConfig
from service.bus.broker import Broker, watch_channel
from service.bus.consumer import QueueConsumer
from service.bus.publisher import Publisher
from service.bus.topology import declare_topology
from service.contract.amqp import Topology
from service.contract.commands import CommandType
from service.contract.errors import ConfigError, MsgFlashError, TopologyConflict
from service.contract.events import quota_exhausted_event
from service.metrics import Metrics
from service.pacing import RateLimiter, open_rate_limiter
from service.providers.msgflash.client import MsgFlashClient
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.quota import QuotaGate
from service.providers.msgflash.retry import RetryPolicy
from service.settings import DEFAULT_ACCOUNT, Settings
from service.state.factory import build_state_store, open_store
from service.state.store import StateStore
from service.web.app import WebDeps, create_admin_app, create_web_app
from service.web.listener import Listener, cannot_listen
from service.web.server import ServerLimits, serve

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


def replica_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
    limiter: RateLimiter
    client: MsgFlashClient
    publisher: Publisher
    pipeline: CommandPipeline
    consumers: tuple[QueueConsumer, ...]
    broker: Broker
    public: Listener
    admin: Listener
    sandbox: Listener | None
    webhook_secrets: list[str]
    draining: bool = False
    http_port: int = 0  # where the public server listens (the bound one when 0 was asked)
    admin_port: int = 0  # where the admin server listens
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def start(self, *, wait_for_broker: float | None = 30.0) -> None:
        """Open everything in order; on failure, whatever did open is closed again."""
        try:
            await self._start(wait_for_broker)
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self, wait_for_broker: float | None) -> None:
        await open_store(self.store, self.settings.state_url)
        self._stack.push_async_callback(self.store.close)
        if self.sandbox is not None:
            await self._listen(self.sandbox)
            log.info("sandbox_started", url=self.settings.msgflash_url)
        self._stack.push_async_callback(self.limiter.close)
        self._stack.push_async_callback(self.client.close)
        self.broker.start()
        self._stack.push_async_callback(self.broker.stop)
        # Runs before the broker, client and store close: nothing may use them afterwards.
        self._stack.push_async_callback(self.pipeline.cancel_remaining)
        self.admin_port = await self._listen(self.admin)
        self.http_port = await self._listen(self.public)
        if self.sandbox is not None:
            await self._register_sandbox_webhook()
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
        try:
            served = await serve(listener.app, listener.host, listener.port, listener.limits)
        except OSError as exc:
            raise ConfigError(cannot_listen(listener, exc)) from None
        self._stack.push_async_callback(served.runner.cleanup)
        return served.port


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
        log.info("relay_draining", boundSeconds=relay.settings.relay_drain_seconds)
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
    topology = settings.topology
    store = build_state_store(
        settings.state_url,
        retention_seconds=settings.relay_state_retention_seconds,
        saturated=lambda: pipeline.saturated(settings.relay_prefetch),
    )
    limiter = open_rate_limiter(settings.state_url, settings.msgflash_rate_limit)
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
    pipeline = _pipeline(settings, topology, metrics, store, client, publisher, announcer)
    consumers = (
        QueueConsumer(topology.messages_queue, settings.relay_prefetch, pipeline.on_message),
        QueueConsumer(
            topology.campaigns_queue, settings.relay_campaign_prefetch, pipeline.on_message
        ),
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
                publisher=publisher,
                store=store,
                webhook_secrets=lambda: tuple(webhook_secrets),
                ingress_tokens=settings.ingress_grants,
                max_body_bytes=settings.relay_max_body_bytes,
                webhook_dedupe_seconds=settings.relay_webhook_dedupe_seconds,
                webhook_tolerance_seconds=settings.relay_webhook_tolerance_seconds,
                body_timeout=settings.relay_http_body_timeout,
            )
        ),
        settings.relay_http_host,
        settings.relay_http_port,
        "RELAY_HTTP_PORT",
        ServerLimits(
            header_timeout=settings.relay_http_header_timeout,
            max_connections=settings.relay_http_max_connections,
        ),
    )
    admin = Listener(
        create_admin_app(lambda: relay.readiness(), metrics),
        settings.relay_admin_host,
        settings.relay_admin_port,
        "RELAY_ADMIN_PORT",
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
        admin=admin,
        sandbox=_sandbox(settings),
        webhook_secrets=webhook_secrets,
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
) -> CommandPipeline:
    resolver = InstanceResolver(
        client,
        ttl_seconds=settings.relay_instance_cache_ttl,
        default_instance=settings.relay_default_instance,
    )
    quota = QuotaGate(
        key_fingerprint=client.key_fingerprint,
        account=DEFAULT_ACCOUNT,
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


def _sandbox(settings: Settings) -> Listener | None:
    if not settings.relay_sandbox:
        return None
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.msgflash.sandbox.app import create_sandbox_app
    from service.providers.msgflash.sandbox.config import SandboxConfig

    app = create_sandbox_app(SandboxConfig(api_keys=(settings.api_key,)))
    return Listener(app, "127.0.0.1", settings.relay_sandbox_port, "RELAY_SANDBOX_PORT")


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
