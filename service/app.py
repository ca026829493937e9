"""The relay from its settings: ``build(settings)`` makes and connects every component without
any I/O; ``run`` starts the relay, serves until asked to stop, then drains.

The only place that knows how the pieces fit; everything else receives what it needs. The
pieces themselves come from one place each: each provider's ``setup`` makes its client and
sandbox, ``service.wiring.handlers`` turns those into command handlers, and
``service.wiring.relay`` opens and closes them in order.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace

import structlog
from aio_pika.abc import AbstractConnection

from consumers.lanes import Lanes, lane_sizes
from consumers.pipeline import CommandPipeline, PipelineConfig
from service.accounts import Accounts
from service.bus.broker import Broker, watch_channel
from service.bus.consumer import QueueConsumer
from service.bus.publisher import Publisher
from service.bus.topology import declare_topology
from service.contract.amqp import Topology
from service.metrics import Metrics
from service.providers.msgflash.setup import msgflash_parts
from service.providers.tether.setup import tether_side
from service.settings import DEFAULT_ACCOUNT, Settings
from service.state.attribution import StoreAttribution
from service.state.factory import build_state_store
from service.state.store import StateStore
from service.state.traced import traced_store
from service.tracing.spans import Tracing
from service.web.app import WebDeps, create_admin_app, create_web_app
from service.web.listener import Listener
from service.web.server import ServerLimits
from service.wiring.handlers import Handlers, msgflash_handlers, tether_handlers
from service.wiring.relay import Relay

log = structlog.get_logger("service.app")


def replica_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
def build(settings: Settings, accounts: Accounts, tracing: Tracing | None = None) -> Relay:
    """Every component, wired together; nothing is opened, connected or started (no I/O: the
    caller reads the accounts, ``service.accounts.load_accounts``).

    ``tracing`` None: no spans (``service.tracing.export`` makes one from ``OTEL_*``). A few
    callbacks refer to components made further down; none of them runs before ``Relay.start``.
    """
    tracing = tracing or Tracing()
    metrics = Metrics()
    topology = replace(
        settings.topology,
        accounts=_laned(accounts.msgflash, settings),
        tether_accounts=_laned(accounts.tether, settings),
    )
    sizes = lane_sizes(settings.relay_account_in_flight, settings.relay_tether_prefetch)
    lanes = Lanes(topology, sizes, metrics)
    store = build_state_store(
        settings.state_url,
        retention_seconds=settings.relay_state_retention_seconds,
        saturated=lambda: pipeline.saturated(settings.relay_prefetch),
    )
    traced = traced_store(store, tracing)  # what commands and webhooks use
    publisher = Publisher(topology, metrics, tracing=tracing)
    attribution = StoreAttribution(traced, settings.relay_state_retention_seconds)
    msgflash = msgflash_parts(settings, metrics, accounts.msgflash, tracing, attribution)
    tether = tether_side(settings, metrics, accounts.tether, tracing)
    handlers = {
        **msgflash_handlers(settings, metrics, traced, publisher, msgflash),
        **tether_handlers(tether, tuple(accounts.tether)),
    }
    pipeline = _pipeline(
        settings, topology, metrics, traced, publisher, handlers, tracing, lanes, accounts.names()
    )
    consumers = _consumers(settings, topology, pipeline, lanes)
    broker = Broker(
        settings.amqp_url.get_secret_value(),
        setups=[
            lambda connection: declare_topology(connection, topology),
            lambda connection: _attach_publisher(connection, publisher, broker),
            lambda connection: _start_consumers(connection, relay, broker),
        ],
        on_lost=lambda: _forget_channels(publisher, consumers),
        heartbeat=settings.relay_amqp_heartbeat_seconds,
    )
    # Lists, not tuples: the embedded sandbox's secrets join their accounts' at start. The
    # path without an account is always default's (verified against none when it has none).
    webhook_secrets = {DEFAULT_ACCOUNT: list[str]()} | {
        name: list(account.webhook_secrets) for name, account in accounts.msgflash.items()
    }

    def secrets_of(account: str) -> tuple[str, ...] | None:
        known = webhook_secrets.get(account)
        return tuple(known) if known is not None else None

    # Both ports: the admin one faces only the orchestrator and the scraper, but a slow or
    # greedy client there must not hold it either, as the probes answer on it.
    limits = ServerLimits(
        header_timeout=settings.relay_http_header_timeout,
        max_connections=settings.relay_http_max_connections,
    )

    public = Listener(
        create_web_app(
            WebDeps(
                metrics=metrics,
                publisher=publisher,
                store=traced,
                webhook_secrets=secrets_of,
                ingress_tokens=settings.ingress_grants,
                max_body_bytes=settings.relay_max_body_bytes,
                webhook_dedupe_seconds=settings.relay_webhook_dedupe_seconds,
                webhook_tolerance_seconds=settings.relay_webhook_tolerance_seconds,
                body_timeout=settings.relay_http_body_timeout,
                webhook_require_timestamp=settings.relay_webhook_require_timestamp,
                tracing=tracing,
            )
        ),
        settings.relay_http_host,
        settings.relay_http_port,
        "RELAY_HTTP_PORT",
        limits,
    )
    admin = Listener(
        create_admin_app(lambda: relay.readiness(), metrics, lambda: relay.readiness_warnings()),
        settings.relay_admin_host,
        settings.relay_admin_port,
        "RELAY_ADMIN_PORT",
        limits,
    )
    relay = Relay(
        settings=settings,
        metrics=metrics,
        topology=topology,
        store=store,
        msgflash=msgflash,
        publisher=publisher,
        pipeline=pipeline,
        consumers=consumers,
        broker=broker,
        public=public,
        admin=admin,
        webhook_secrets=webhook_secrets,
        tether=tether,
        tracing=tracing,
    )
    # Read at each scrape, not at each probe: right even where nothing asks /readyz.
    metrics.ready.set_function(lambda: float(relay.ready))
    return relay


def _laned(accounts: Collection[str], settings: Settings) -> tuple[str, ...]:
    """A provider's accounts that get lanes. Only where there is someone to be fair to: each
    provider's commands arrive on queues of their own, so with one account of a provider,
    moving its deliveries to a queue of its own would double the broker's work and change
    nothing."""
    return tuple(accounts) if settings.relay_account_in_flight > 0 and len(accounts) > 1 else ()


def _pipeline(
    settings: Settings,
    topology: Topology,
    metrics: Metrics,
    store: StateStore,
    publisher: Publisher,
    handlers: Handlers,
    tracing: Tracing,
    lanes: Lanes,
    accounts: tuple[str, ...],
) -> CommandPipeline:
    return CommandPipeline(
        handlers=handlers,
        publisher=publisher,
        store=store,
        metrics=metrics,
        config=PipelineConfig(
            owner=replica_identity(),
            accounts=frozenset(accounts),
            max_body_bytes=settings.relay_max_body_bytes,
            lease_seconds=settings.relay_lease_seconds,
            retry_tiers=len(topology.retry_tiers),
        ),
        tracing=tracing,
        lanes=lanes,
    )


def _consumers(
    settings: Settings, topology: Topology, pipeline: CommandPipeline, lanes: Lanes
) -> tuple[QueueConsumer, ...]:
    """One consumer per queue, each with its own prefetch: a slow provider holds at most its
    own queue's deliveries (a Tether outage never delays MsgFlash commands). An account's own
    queue is read with its lane size as prefetch: what waits there, waits in the broker."""
    moved = tuple(QueueConsumer(lane.queue, lane.size, pipeline.on_moved_message) for lane in lanes)
    return (
        QueueConsumer(topology.messages_queue, settings.relay_prefetch, pipeline.on_message),
        QueueConsumer(
            topology.campaigns_queue, settings.relay_campaign_prefetch, pipeline.on_message
        ),
        QueueConsumer(topology.tether_queue, settings.relay_tether_prefetch, pipeline.on_message),
        *moved,
    )


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
