"""Whole-process faults: SIGKILL, SIGTERM drain, and the broker itself restarting.

The relay runs as a real subprocess (`python -m service.cli run`) where a process fault is the
point; the sandbox runs in the test process, so it outlives the relay it serves.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from service.accounts import load_accounts
from service.app import build
from service.bus.topology import declare_topology, delete_topology
from service.contract.amqp import Topology
from service.settings import load_settings
from tests.conftest import (
    AMQP_URL,
    RESULT_TYPES,
    TEST_RETRY_DELAYS,
    EventTap,
    Producer,
    SandboxHandle,
    sends_by_text,
    text_command,
)

pytestmark = pytest.mark.slow


def result_ids(events: EventTap) -> dict[str, set[str]]:
    """requestId -> the distinct result event ids seen for it."""
    found: dict[str, set[str]] = {}
    for event in events.events:
        if event["type"] in RESULT_TYPES:
            found.setdefault(event["data"]["requestId"], set()).add(event["id"])
    return found


async def wait_for_results(events: EventTap, wanted: set[str], *, timeout: float) -> None:
    """Until every wanted command has a result event (redelivered copies may repeat some)."""
    deadline = time.monotonic() + timeout
    while not set(result_ids(events)) >= wanted:
        if time.monotonic() > deadline:
            missing = len(wanted - set(result_ids(events)))
            pytest.fail(f"{missing} of {len(wanted)} commands have no result after {timeout}s")
        await asyncio.sleep(0.1)


async def test_sigkill_mid_stream_then_restart_loses_nothing_and_sends_nothing_twice(
    relay_processes: Any, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await sandbox.set_faults(latency_ms=40)
    commands = [text_command(f"kill {i}") for i in range(300)]
    for cmd in commands:
        await producer.publish(cmd)
    first = relay_processes(relay_prefetch=32)
    await first.start()
    await events.wait_for(lambda e: e["type"] in RESULT_TYPES, count=60, timeout=60)
    first.signal(signal.SIGKILL)
    assert await first.wait(10) == -signal.SIGKILL
    assert len(result_ids(events)) < len(commands)  # killed mid-stream, work left over

    second = relay_processes(relay_prefetch=32)
    await second.start()
    await wait_for_results(events, {c["id"] for c in commands}, timeout=120)

    ids = result_ids(events)
    assert set(ids) == {c["id"] for c in commands}, "a command was lost"
    assert all(len(event_ids) == 1 for event_ids in ids.values()), "two different results"
    sends = await sends_by_text(sandbox)
    assert max(sends.values()) == 1, "a message was sent twice"
    unknown = {
        e["data"]["requestId"]
        for e in events.events
        if e["type"] == "msgflash.message.failed"
        and e["data"]["error"]["code"] == "OUTCOME_UNKNOWN"
    }
    by_text = {c["id"]: c["data"]["message"]["text"] for c in commands}
    assert not [rid for rid in unknown if sends[by_text[rid]]], "OUTCOME_UNKNOWN but it was sent"


async def test_sigkill_with_a_full_prefetch_waiting_on_pacing_sends_each_once_and_parks_none(
    relay_processes: Any, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    commands = [text_command(f"paced {i}") for i in range(60)]
    for cmd in commands:
        await producer.publish(cmd)
    first = relay_processes(relay_prefetch=32, msgflash_rate_limit=4)
    await first.start()
    await events.wait_for(lambda e: e["type"] in RESULT_TYPES, count=4, timeout=60)
    in_flight = await first.metric("relay_commands_in_flight")
    first.signal(signal.SIGKILL)
    assert await first.wait(10) == -signal.SIGKILL
    assert in_flight >= 20, "the kill should find most of the prefetch waiting for a slot"

    second = relay_processes(relay_prefetch=32, msgflash_rate_limit=50)
    await second.start()
    await wait_for_results(events, {c["id"] for c in commands}, timeout=120)

    failed = [e for e in events.events if e["type"] == "msgflash.message.failed"]
    sends = await sends_by_text(sandbox)
    never_sent = [e for e in failed if not sends[f"paced {_index(commands, e)}"]]
    assert not never_sent, f"{len(never_sent)} never-sent commands dead-lettered"
    codes = sorted({e["data"]["error"]["code"] for e in failed})
    assert not failed, f"{len(failed)} commands parked ({codes}); a kill must leave 0 unknowns"
    assert max(sends.values()) == 1, "a message was sent twice"
    assert len(sends) == len(commands) - len(failed)


def _index(commands: list[dict[str, Any]], event: dict[str, Any]) -> int:
    ids = [c["id"] for c in commands]
    return ids.index(event["data"]["requestId"])


async def test_a_second_signal_exits_at_once(
    relay_processes: Any, producer: Producer, sandbox: SandboxHandle
) -> None:
    await sandbox.set_faults(latency_ms=20_000)
    relay = relay_processes(relay_drain_seconds=60)
    await relay.start()
    await producer.publish(text_command("stuck"))
    await asyncio.sleep(0.5)
    relay.signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    relay.signal(signal.SIGTERM)
    assert await relay.wait(5) != 0


async def _rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(process.wait(), 120) == 0, f"rabbitmqctl {args} failed"


async def _drain_tap(queue_name: str) -> list[dict[str, Any]]:
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        found = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            found.append(json.loads(message.body))
        return found
    finally:
        await connection.close()


@pytest.fixture
async def restart_topology(prefix: str) -> AsyncIterator[Topology]:
    """Own connections only: the fixtures' shared connection would die with the broker."""
    topology = Topology(prefix=prefix, retry_delays=(0.2, 0.4))
    yield topology
    connection = await aio_pika.connect(AMQP_URL, timeout=60)
    try:
        await delete_topology(connection, topology)
        channel = await connection.channel()
        await channel.queue_delete(f"{prefix}.tap")
    finally:
        await connection.close()


@pytest.mark.restarts_broker
async def test_2000_commands_through_two_broker_restarts_each_sent_once(
    restart_topology: Topology, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    topology = restart_topology
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    await declare_topology(connection, topology)
    channel = await connection.channel(publisher_confirms=True)
    tap = await channel.declare_queue(
        f"{topology.prefix}.tap", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await tap.bind(topology.events_exchange, routing_key="message.*")
    commands = [text_command(f"restart {i}") for i in range(2000)]
    exchange = await channel.get_exchange(topology.commands_exchange)
    for cmd in commands:
        await exchange.publish(
            aio_pika.Message(
                json.dumps(cmd).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            "message.send",
        )
    await connection.close()

    env = {
        "AMQP_URL": AMQP_URL,
        "MSGFLASH_BASE_URL": sandbox.url,
        "MSGFLASH_API_KEY": sandbox.api_key,
        "RELAY_EXCHANGE_PREFIX": topology.prefix,
        "RELAY_HTTP_HOST": "127.0.0.1",
        "RELAY_HTTP_PORT": "0",
        "RELAY_ADMIN_HOST": "127.0.0.1",
        "RELAY_ADMIN_PORT": "0",
        "RELAY_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RELAY_RETRY_DELAYS": TEST_RETRY_DELAYS,
        "MSGFLASH_RATE_LIMIT": "1000",
        "RELAY_LOG_LEVEL": "warning",
    }
    settings = load_settings(env)
    relay = build(settings, load_accounts(settings, env))
    await relay.start(wait_for_broker=30)
    try:
        for _ in range(2):
            await _wait_for_sends(sandbox, at_least=len(await sandbox.requests()) + 300)
            await _rabbitmqctl("stop_app")
            await asyncio.sleep(1)
            await _rabbitmqctl("start_app")
            await relay.broker.wait_ready(60)
        results: list[dict[str, Any]] = []
        deadline = time.monotonic() + 180
        wanted = {c["id"] for c in commands}
        while time.monotonic() < deadline:
            results += await _drain_tap(f"{topology.prefix}.tap")
            if {e["data"]["requestId"] for e in results if e["type"] in RESULT_TYPES} >= wanted:
                break
            await asyncio.sleep(0.5)
    finally:
        await relay.drain()
        await relay.stop()

    per_request: dict[str, set[str]] = {}
    for event in results:
        if event["type"] in RESULT_TYPES:
            per_request.setdefault(event["data"]["requestId"], set()).add(event["id"])
    assert set(per_request) == wanted, f"{len(wanted - set(per_request))} commands lost"
    doubled = {rid: ids for rid, ids in per_request.items() if len(ids) > 1}
    example = [
        (e["type"], e["id"], e["data"].get("messageId"), e["data"].get("error"))
        for e in results
        if doubled and e["data"]["requestId"] == next(iter(doubled))
    ]
    assert not doubled, f"{len(doubled)} commands with two different results, e.g. {example}"
    assert all(e["type"] == "msgflash.message.sent" for e in results)
    sends = await sends_by_text(sandbox)
    assert len(sends) == 2000 and max(sends.values()) == 1


async def _wait_for_sends(sandbox: SandboxHandle, *, at_least: int) -> None:
    for _ in range(600):
        if len(await sandbox.requests()) >= at_least:
            return
        await asyncio.sleep(0.1)
