"""Wiring: builds every component from Settings, starts them in order and stops them in reverse.

The only place that knows how the pieces fit; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import structlog
from aio_pika.abc import AbstractConnection
from aiohttp import web

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
from service.contract.errors import MsgFlashError
from service.contract.events import quota_exhausted_event
from service.metrics import Metrics
from service.pacing import RateLimiter, open_rate_limiter
from service.providers.msgflash.client import MsgFlashClient
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.quota import QuotaGate
from service.providers.msgflash.retry import RetryPolicy
from service.settings import Settings
from service.state.factory import open_state_store
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


def topology_for(settings: Settings) -> Topology:
    return Topology(prefix=settings.relay_exchange_prefix, retry_delays=settings.retry_delays)


def replica_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Relay:
    """A running relay: broker supervisor, consumers, HTTP server and their dependencies."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    draining: bool = False
    base_url: str = ""
    http_port: int = 0
    topology: Topology = field(init=False)
    publisher: Publisher = field(init=False)
    pipeline: CommandPipeline = field(init=False)
    broker: Broker = field(init=False)
    client: MsgFlashClient = field(init=False)
    store: StateStore = field(init=False)
    consumers: list[QueueConsumer] = field(init=False, default_factory=list)
    webhook_secrets: list[str] = field(init=False, default_factory=list)
    _stack: AsyncExitStack = field(init=False, default_factory=AsyncExitStack)

    async def start(self, *, wait_for_broker: float | None = 30.0) -> None:
        """Start everything; on failure, whatever did start is stopped again."""
        try:
            await self._start(wait_for_broker)
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self, wait_for_broker: float | None) -> None:
        s = self.settings
        self.topology = topology_for(s)
        self.webhook_secrets = list(s.webhook_secrets)
        self.base_url = s.msgflash_base_url
        if s.relay_sandbox:
            self.base_url = await self._start_sandbox()
        self.store = await open_state_store(
            s.relay_state_url,
            retention_seconds=s.relay_state_retention_seconds,
            saturated=self._commands_saturated,
        )
        self._stack.push_async_callback(self.store.close)
        limiter: RateLimiter = open_rate_limiter(s.relay_state_url, s.msgflash_rate_limit)
        self._stack.push_async_callback(limiter.close)
        self.client = MsgFlashClient.create(
            base_url=self.base_url,
            api_key=s.api_key,
            limiter=limiter,
            policy=RetryPolicy(max_attempts=s.relay_retry_max_attempts),
            metrics=self.metrics,
            timeout=s.relay_msgflash_timeout,
        )
        self._stack.push_async_callback(self.client.close)
        self.publisher = Publisher(self.topology, self.metrics)
        self.pipeline = self._build_pipeline()
        self.consumers = [
            QueueConsumer(self.topology.messages_queue, s.relay_prefetch, self.pipeline.on_message),
            QueueConsumer(
                self.topology.campaigns_queue, s.relay_campaign_prefetch, self.pipeline.on_message
            ),
        ]
        self.broker = Broker(
            s.amqp_url.get_secret_value(),
            setups=[self._declare, self._attach_publisher, self._start_consumers],
            on_lost=self._on_broker_lost,
        )
        self.broker.start()
        self._stack.push_async_callback(self.broker.stop)
        # Runs before the broker, client and store close: nothing may use them afterwards.
        self._stack.push_async_callback(self.pipeline.cancel_remaining)
        await self._start_http()
        if s.relay_sandbox:
            await self._register_sandbox_webhook()
        if wait_for_broker is not None:
            await self.broker.wait_ready(wait_for_broker)
        log.info("relay_started", msgflash=self.base_url, http_port=self.http_port)

    def add_webhook_secret(self, secret: str) -> None:
        """Accept webhooks signed with ``secret`` too (embedded sandbox, tests)."""
        if secret not in self.webhook_secrets:
            self.webhook_secrets.append(secret)

    def readiness(self) -> dict[str, bool]:
        return {
            "broker": self.broker.connected,
            "consumers": bool(self.consumers) and all(c.active for c in self.consumers),
            "accepting": not self.draining,
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

    # --- wiring ---------------------------------------------------------------------------
    def _build_pipeline(self) -> CommandPipeline:
        s = self.settings
        resolver = InstanceResolver(
            self.client,
            ttl_seconds=s.relay_instance_cache_ttl,
            default_instance=s.relay_default_instance,
        )
        quota = QuotaGate(
            key_fingerprint=self.client.key_fingerprint,
            probe_seconds=s.relay_quota_probe_seconds,
            metrics=self.metrics,
            on_closed=self._announce_quota,
        )
        messages = MessageHandler(
            self.client, resolver, self.store, quota, s.relay_outcome_unknown_policy
        )
        campaigns = CampaignHandler(self.client, resolver, quota, s.relay_campaign_preflight)
        handlers: dict[CommandType, Handler] = {
            CommandType.SCHEDULE_MESSAGE: messages,
            CommandType.SEND_MESSAGE: messages,
            CommandType.CREATE_CAMPAIGN: campaigns,
        }
        return CommandPipeline(
            handlers=handlers,
            publisher=self.publisher,
            store=self.store,
            metrics=self.metrics,
            config=PipelineConfig(
                owner=replica_identity(),
                max_body_bytes=s.relay_max_body_bytes,
                lease_seconds=s.relay_lease_seconds,
                retry_tiers=len(self.topology.retry_tiers),
            ),
        )

    def _commands_saturated(self) -> bool:
        """The message pipeline holds at least half its prefetch: the store batches wider."""
        pipeline: CommandPipeline | None = getattr(self, "pipeline", None)
        return pipeline is not None and pipeline.saturated(self.settings.relay_prefetch)

    async def _announce_quota(self, error: MsgFlashError) -> None:
        key = f"quota-exhausted:{self.client.key_fingerprint}:{error.code}"
        if not await self.store.first_seen(key, self.settings.relay_quota_probe_seconds):
            return
        event = quota_exhausted_event(
            code=error.code, key_fingerprint=self.client.key_fingerprint, message=error.message
        )
        try:
            await self.publisher.publish_event(event)
        except Exception:
            await self.store.forget_seen(key)
            raise

    async def _declare(self, connection: AbstractConnection) -> None:
        await declare_topology(connection, self.topology)

    async def _attach_publisher(self, connection: AbstractConnection) -> None:
        channel = await self.publisher.attach(connection)
        watch_channel(channel, self.broker, "publisher")

    async def _start_consumers(self, connection: AbstractConnection) -> None:
        if self.draining:
            return
        for consumer in self.consumers:
            channel = await consumer.start(connection)
            watch_channel(channel, self.broker, consumer.queue)

    def _on_broker_lost(self) -> None:
        self.publisher.detach()
        for consumer in self.consumers:
            consumer.forget()

    async def _start_http(self) -> None:
        s = self.settings
        deps = WebDeps(
            metrics=self.metrics,
            readiness=self.readiness,
            publisher=self.publisher,
            store=self.store,
            webhook_secrets=lambda: tuple(self.webhook_secrets),
            ingress_tokens=s.ingress_tokens,
            max_body_bytes=s.relay_max_body_bytes,
            webhook_dedupe_seconds=s.relay_webhook_dedupe_seconds,
        )
        app = create_web_app(deps)
        self.http_port = await self._serve(
            app, self.settings.relay_http_host, self.settings.relay_http_port
        )

    async def _register_sandbox_webhook(self) -> None:
        """Embedded mode: subscribe this relay to the sandbox's webhooks, as an operator would."""
        url = f"http://127.0.0.1:{self.http_port}/webhooks/msgflash"
        for hook in await self.client.list_webhooks():
            if hook.get("url") == url:
                await self.client.delete_webhook(str(hook["id"]))
        created = await self.client.register_webhook(url, WEBHOOK_EVENTS)
        self.add_webhook_secret(str(created["secret"]))
        log.info("sandbox_webhook_registered", url=url)

    async def _start_sandbox(self) -> str:
        # Imported here on purpose: production paths never load the simulator unless asked to.
        from service.providers.msgflash.sandbox.app import create_sandbox_app
        from service.providers.msgflash.sandbox.config import SandboxConfig

        app = create_sandbox_app(SandboxConfig(api_keys=(self.settings.api_key,)))
        port = await self._serve(app, "127.0.0.1", self.settings.relay_sandbox_port)
        log.info("sandbox_started", url=f"http://127.0.0.1:{port}")
        return f"http://127.0.0.1:{port}"

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._stack.push_async_callback(runner.cleanup)
        server: Any = site._server  # the bound port, when 0 asked for an ephemeral one
        return int(server.sockets[0].getsockname()[1]) if server and server.sockets else port


async def serve_until_signalled(relay: Relay, stop: asyncio.Event) -> int:
    """Run until ``stop`` is set (SIGTERM/SIGINT), then drain and stop. Exit code 0 when clean."""
    await stop.wait()
    log.info("relay_draining", bound_seconds=relay.settings.relay_drain_seconds)
    await relay.drain()
    await relay.stop()
    return 0
