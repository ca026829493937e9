"""Redis outages under two replicas: a blackholed link and a restart from the append-only file.

No command may be sent twice, and none that was never sent may end parked for a human. The
blackhole runs through the proxy of ``tests/links.py`` in front of the shared Redis; the
restart uses a private ``redis-server`` on a free port in a temporary folder, never the
shared one.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from service.contract.commands import RawCommand, parse_command
from tests.conftest import (
    REDIS_URL,
    RESULT_TYPES,
    EventTap,
    Producer,
    RelayFactory,
    SandboxHandle,
    sends_by_text,
    text_command,
)
from tests.integration.conftest import free_port
from tests.integration.test_half_open_links import assert_each_ended_once, wait_for_results
from tests.links import LinkProxy

pytestmark = pytest.mark.slow


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared Redis, emptied afterwards."""
    prefix = f"t-outage-{uuid.uuid4().hex[:8]}"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        await redis.delete(key)
    await redis.aclose()


def replica_settings(state_url: str) -> dict[str, Any]:
    return {
        "relay_state_url": state_url,
        "relay_lease_seconds": 3,  # a claim mistaken for a dead holder's shows within the test
        "relay_retry_delays": "0.5,1",
        "relay_state_retention_seconds": 600,
        "msgflash_rate_limit": 1000,
    }


def assert_all_sent_once(events: EventTap, commands: list[dict[str, Any]], sends: Any) -> None:
    assert_each_ended_once(events, {c["id"] for c in commands})
    failures = [e["data"]["error"]["code"] for e in events.events if e["type"] == RESULT_TYPES[1]]
    assert not failures, f"{len(failures)} commands parked: {sorted(set(failures))}"
    assert max(sends.values()) == 1, "a message was sent twice"


async def test_a_blackholed_redis_sends_every_command_once_and_parks_none(
    relay_factory: RelayFactory,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    redis_prefix: str,
) -> None:
    await sandbox.set_faults(latency_ms=30)
    commands = [text_command(f"redis blackhole {i}") for i in range(300)]
    async with LinkProxy(urlsplit(REDIS_URL).port or 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0?prefix={redis_prefix}"
        for _replica in range(2):
            await relay_factory(**replica_settings(url))
        for cmd in commands:
            await producer.publish(cmd)
        await events.wait_for(lambda e: e["type"] in RESULT_TYPES, count=30, timeout=60)
        proxy.blackhole()
        await asyncio.sleep(8)  # claims, completions and pacing run into the blackhole
        proxy.heal(resume_old=False)  # replies on the old connections never come
        await wait_for_results(events, {c["id"] for c in commands}, timeout=240)
    # Includes the call mark whose write reached Redis but whose reply was lost: its holder sent
    # nothing, and its successor must send rather than park the command as OUTCOME_UNKNOWN.
    assert_all_sent_once(events, commands, await sends_by_text(sandbox))


async def test_a_call_mark_applied_whose_reply_was_lost_is_sent_by_the_successor_not_parked(
    relay_factory: RelayFactory,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    redis_prefix: str,
) -> None:
    first, second = text_command("mark reply lost 1"), text_command("mark reply lost 2")
    claim_key = f"{redis_prefix}:claim:{command_key(second)}"
    direct = Redis.from_url(REDIS_URL)
    async with LinkProxy(urlsplit(REDIS_URL).port or 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0?prefix={redis_prefix}"
        # One call a second: the second command books its slot, then waits for it.
        relay = await relay_factory(**{**replica_settings(url), "msgflash_rate_limit": 1})
        await producer.publish(first)
        await producer.publish(second)
        await events.wait_for(lambda e: e["data"].get("requestId") == first["id"], timeout=30)
        proxy.blackhole(replies_only=True)
        for _ in range(200):  # Redis applies the second's call mark; its reply never comes
            if await direct.hget(claim_key, "called_at"):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the second command's call mark never reached Redis")
        proxy.heal(resume_old=False)
        await wait_for_results(events, {first["id"], second["id"]}, timeout=60)
    await direct.aclose()
    assert_all_sent_once(events, [first, second], await sends_by_text(sandbox))
    outages = relay.metrics.registry.get_sample_value(
        "relay_deferred_total", {"reason": "STATE_STORE_UNAVAILABLE", "account": "default"}
    )
    assert outages and outages >= 1, (
        "the lost reply did not defer the command: the test missed its case"
    )


def command_key(cmd: dict[str, Any]) -> str:
    return parse_command(RawCommand(json.dumps(cmd).encode()), max_bytes=1 << 20).key


class PrivateRedis:
    """``redis-server`` with AOF ``appendfsync always`` in a folder of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        with (self.folder / "redis.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log)
        redis = Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    await redis.ping()
                    return
                except OSError:
                    await asyncio.sleep(0.05)
                except Exception:  # loading the AOF: not answering yet
                    await asyncio.sleep(0.05)
            pytest.fail(f"private redis-server did not start: {self.folder / 'redis.log'}")
        finally:
            await redis.aclose()

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 10)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    yield server
    if server.process is not None and server.process.returncode is None:
        await server.kill()


async def test_redis_killed_and_restarted_from_its_aof_parks_nothing_and_sends_none_twice(
    relay_factory: RelayFactory,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    private_redis: PrivateRedis,
) -> None:
    await sandbox.set_faults(latency_ms=30)
    await private_redis.start()
    commands = [text_command(f"redis restart {i}") for i in range(300)]
    for _replica in range(2):
        await relay_factory(**replica_settings(private_redis.url))
    for cmd in commands:
        await producer.publish(cmd)
    await events.wait_for(lambda e: e["type"] in RESULT_TYPES, count=30, timeout=60)
    await private_redis.kill()
    await asyncio.sleep(3)
    await private_redis.start()
    await wait_for_results(events, {c["id"] for c in commands}, timeout=240)
    assert_all_sent_once(events, commands, await sends_by_text(sandbox))
