"""``relay_started`` means the relay consumes: said once the broker is set up, never before,
and the first failed connect says what to check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import structlog
from aio_pika.abc import AbstractConnection
from structlog.typing import EventDict

from service.accounts import load_accounts
from service.app import build
from service.bus.topology import delete_topology
from service.contract.amqp import Topology
from service.settings import load_settings
from service.wiring.relay import Relay
from tests.conftest import AMQP_URL, SandboxHandle

Spotter = Callable[[object, str, EventDict], EventDict]


@pytest.fixture
async def unstarted(
    prefix: str, sandbox: SandboxHandle, amqp: AbstractConnection
) -> AsyncIterator[Callable[[str], Relay]]:
    """Relays built, not started; stopped afterwards, and what they declared deleted."""
    built: list[Relay] = []

    def make(amqp_url: str) -> Relay:
        env = {
            "AMQP_URL": amqp_url,
            "MSGFLASH_BASE_URL": sandbox.url,
            "MSGFLASH_API_KEY": sandbox.api_key,
            "RELAY_EXCHANGE_PREFIX": prefix,
            "RELAY_HTTP_HOST": "127.0.0.1",
            "RELAY_HTTP_PORT": "0",
            "RELAY_ADMIN_HOST": "127.0.0.1",
            "RELAY_ADMIN_PORT": "0",
            "RELAY_STATE_URL": "memory://",
        }
        settings = load_settings(env)
        relay = build(settings, load_accounts(settings, env))
        built.append(relay)
        return relay

    yield make
    for relay in built:
        await relay.stop()
    await delete_topology(amqp, Topology(prefix=prefix))


def spotting(name: str, seen: asyncio.Event, also: Callable[[], None] = lambda: None) -> Spotter:
    def spot(_logger: object, _method: str, entry: EventDict) -> EventDict:
        if entry["event"] == name:
            also()
            seen.set()
        return entry

    return spot


async def test_relay_started_is_logged_once_the_consumers_are_active(
    unstarted: Callable[[str], Relay],
) -> None:
    relay = unstarted(AMQP_URL)
    started = asyncio.Event()
    consuming_then: list[bool] = []

    def note() -> None:
        consuming_then.append(all(consumer.active for consumer in relay.consumers))

    with structlog.testing.capture_logs([spotting("relay_started", started, note)]) as logs:
        await relay.start(wait_for_broker=None)
        await asyncio.wait_for(started.wait(), timeout=30)

    assert consuming_then == [True]
    (line,) = [entry for entry in logs if entry["event"] == "relay_started"]
    assert line["httpPort"] == relay.http_port
    assert line["queues"] == [consumer.queue for consumer in relay.consumers]


async def test_no_relay_started_while_the_broker_is_unreachable(
    unstarted: Callable[[str], Relay],
) -> None:
    relay = unstarted("amqp://guest:guest@127.0.0.1:1/")
    failed = asyncio.Event()

    with structlog.testing.capture_logs([spotting("amqp_connect_failed", failed)]) as logs:
        await relay.start(wait_for_broker=None)
        await asyncio.wait_for(failed.wait(), timeout=30)
        await relay.stop()

    events = [entry["event"] for entry in logs]
    assert "relay_started" not in events
    first = next(entry for entry in logs if entry["event"] == "amqp_connect_failed")
    assert "AMQP_URL" in first["hint"] and "make services" in first["hint"]
