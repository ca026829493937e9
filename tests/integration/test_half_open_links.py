"""Half-open links: a broker or MsgFlash connection that goes silent (no FIN, no RST) must
neither stall the relay nor make it send anything twice.

Each test puts a blackholing proxy (``tests/links.py``) between the relay and one real peer;
the shared servers themselves are never touched. How fast things are noticed is measured by
``make bench`` (reliability), not asserted here: waits below are generous upper bounds.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from service.app import Relay
from tests.conftest import (
    AMQP_URL,
    RESULT_TYPES,
    EventTap,
    Producer,
    RelayFactory,
    SandboxHandle,
    sends_by_text,
    text_command,
)
from tests.integration.test_process_faults import result_ids, wait_for_results
from tests.links import LinkProxy

pytestmark = pytest.mark.slow

HEARTBEAT = 2


async def readyz(relay: Relay) -> int:
    url = f"http://127.0.0.1:{relay.admin_port}/readyz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def wait_for_readyz(relay: Relay, status: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await readyz(relay)) != status:
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz still {seen} after {timeout}s, expected {status}")
        await asyncio.sleep(0.05)


def amqp_url_via(proxy: LinkProxy) -> str:
    parts = urlsplit(AMQP_URL)
    netloc = parts.netloc.rsplit("@", 1)
    credentials = f"{netloc[0]}@" if len(netloc) == 2 else ""
    return parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}").geturl()


def amqp_port() -> int:
    return urlsplit(AMQP_URL).port or 5672


def assert_each_ended_once(events: EventTap, wanted: set[str]) -> None:
    ids = result_ids(events)
    assert set(ids) == wanted, "a command was lost"
    assert all(len(event_ids) == 1 for event_ids in ids.values()), "two different results"


async def test_a_blackholed_broker_link_is_dropped_unready_rebuilt_and_loses_nothing(
    relay_factory: RelayFactory, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await sandbox.set_faults(latency_ms=50)
    commands = [text_command(f"broker link {i}") for i in range(300)]
    wanted = {c["id"] for c in commands}
    async with LinkProxy(amqp_port()) as proxy:
        relay = await relay_factory(
            amqp_url=amqp_url_via(proxy),
            relay_amqp_heartbeat_seconds=HEARTBEAT,
            relay_prefetch=32,
        )
        for cmd in commands:
            await producer.publish(cmd)
        await events.wait_for(lambda e: e["type"] in RESULT_TYPES, count=30, timeout=60)
        proxy.blackhole()
        # Two intervals is the promise; three bounds it loosely, and heartbeats alone need four.
        await wait_for_readyz(relay, 503, timeout=HEARTBEAT * 3)
        await asyncio.sleep(HEARTBEAT * 2)  # reconnecting through the blackhole cannot succeed
        assert await readyz(relay) == 503
        assert len(result_ids(events)) < len(commands)
        proxy.heal(resume_old=False)  # the old connection stays dead for good, as after a NAT drop
        await wait_for_readyz(relay, 200, timeout=60)
        await wait_for_results(events, wanted, timeout=120)
    assert_each_ended_once(events, wanted)
    sends = await sends_by_text(sandbox)
    assert max(sends.values()) == 1, "a message was sent twice"


def sandbox_port(sandbox: SandboxHandle) -> int:
    port = urlsplit(sandbox.url).port
    assert port is not None
    return port


async def test_a_blackholed_msgflash_link_creates_no_message_twice(
    relay_factory: RelayFactory, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    """One content for every command, as in a campaign-like batch: a lost answer's lookup
    sees many matches. Reading "several" as "none" and resending created the duplicates; now
    each unanswered send takes one settled match nobody holds, or waits."""
    await sandbox.set_faults(latency_ms=200)  # many answers on their way when the link dies
    commands = [text_command("the same text") for _ in range(300)]
    wanted = {c["id"] for c in commands}
    async with LinkProxy(sandbox_port(sandbox)) as proxy:
        await relay_factory(
            msgflash_base_url=f"http://127.0.0.1:{proxy.port}",
            msgflash_rate_limit=1000,
            relay_msgflash_timeout=1,
            relay_retry_delays="1,2,4,8",
            relay_prefetch=64,
        )
        for cmd in commands:
            await producer.publish(cmd)
        await events.wait_for(lambda e: e["type"] in RESULT_TYPES, count=30, timeout=60)
        proxy.blackhole()
        await asyncio.sleep(4)  # several call deadlines and lookups run into the blackhole
        proxy.heal()
        await wait_for_results(events, wanted, timeout=180)
    assert_each_ended_once(events, wanted)
    sent = [e for e in events.events if e["type"] == "msgflash.message.sent"]
    assert len(sent) == len(commands), "a command ended without its message"
    created = (await sends_by_text(sandbox))["the same text"]
    assert created == len(commands), f"{created - len(commands)} messages created twice"
    assert len({e["data"]["messageId"] for e in sent}) == len(commands), "a message taken twice"
