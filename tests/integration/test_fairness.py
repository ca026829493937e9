"""Per-account lanes (contract §7): one account's backlog does not delay another's commands.

Account ``acme`` is paced slowly and given a backlog; its full lane moves the backlog to its
own queue, so ``default``'s commands behind it on the shared queue are sent at once. The moved
commands keep what their producer sent, are sent once, and survive a drain.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractConnection, AbstractQueue

from service.contract.amqp import Topology
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.settings import DEFAULT_SANDBOX_API_KEY
from service.wiring.relay import Relay
from tests.conftest import (
    RESULT_TYPES,
    EventTap,
    Producer,
    RelayFactory,
    SandboxHandle,
    command,
    dead_letters,
    sends_by_text,
    text_command,
)
from tests.integration.test_accounts import ACME_KEY
from tests.integration.test_drain import until

SLOW_ACCOUNTS_FILE = """
accounts:
  - name: acme
    provider: msgflash
    apiKeyEnv: MSGFLASH_KEY_ACME
    rateLimit: {rate}
"""


@pytest.fixture
def sandbox_config() -> dict[str, Any]:
    return {
        "api_keys": (DEFAULT_SANDBOX_API_KEY, ACME_KEY),
        "rate_limit_per_second": None,
        "lifecycle_step_seconds": 0.05,
        "webhook_retry_base_seconds": 0.05,
    }


StartRelay = Callable[..., Awaitable[Relay]]


@pytest.fixture
def with_acme(relay_factory: RelayFactory, tmp_path: Path) -> StartRelay:
    """A relay whose account ``acme`` sends ``rate`` commands a second, with ``lane`` slots."""

    async def start(*, rate: float = 2, lane: int = 2) -> Relay:
        path = tmp_path / f"accounts-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(SLOW_ACCOUNTS_FILE.format(rate=rate))
        return await relay_factory(
            relay_accounts_file=str(path),
            msgflash_key_acme=ACME_KEY,
            relay_account_in_flight=lane,
        )

    return start


def for_acme(text: str) -> dict[str, Any]:
    return {**text_command(text), "account": "acme"}


def results_of(account: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] in RESULT_TYPES and e.get("account") == account


async def queue_depth(amqp: AbstractConnection, name: str) -> int:
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await channel.close()


async def drained(queue: AbstractQueue, expect: int, timeout: float = 10) -> list[Any]:
    """Take up to ``expect`` messages from ``queue``, as they come."""
    found: list[Any] = []
    async with asyncio.timeout(timeout):
        while len(found) < expect:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                found.append(message)
    return found


async def moved(relay: Relay, account: str) -> float:
    url = f"http://127.0.0.1:{relay.admin_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    found = re.search(
        rf'relay_account_moved_total{{account="{account}",provider="msgflash"}} (\S+)', text
    )
    return float(found.group(1)) if found else 0.0


async def test_a_second_account_is_served_while_the_first_still_has_most_of_its_backlog(
    with_acme: StartRelay,
    producer: Producer,
    events: EventTap,
    sandbox: SandboxHandle,
    amqp: AbstractConnection,
    declared: Topology,
) -> None:
    relay = await with_acme(rate=2, lane=2)
    backlog = 200
    for index in range(backlog):
        await producer.publish(for_acme(f"backlog {index}"))
    others = [text_command(f"other {index}") for index in range(3)]
    for body in others:
        await producer.publish(body)

    done = await events.wait_for(results_of("default"), count=len(others), timeout=20)

    assert {e["type"] for e in done} == {"msgflash.message.sent"}
    acme_done = len([e for e in events.events if results_of("acme")(e)])
    waiting = await queue_depth(amqp, declared.account_queue("acme"))
    assert acme_done < backlog // 4, "the backlog was not what delayed the other account"
    assert waiting > backlog // 2, "most of the backlog waits in the account's own queue"
    assert await moved(relay, "acme") >= waiting


async def test_moved_commands_keep_their_properties_and_are_sent_once(
    with_acme: StartRelay,
    producer: Producer,
    events: EventTap,
    sandbox: SandboxHandle,
    amqp: AbstractConnection,
    declared: Topology,
) -> None:
    relay = await with_acme(rate=5, lane=1)
    channel = await amqp.channel()
    replies = await channel.declare_queue(exclusive=True, auto_delete=True)
    bodies = [for_acme(f"kept {index}") for index in range(6)]
    for body in bodies:
        await producer.publish(
            body,
            correlation_id=f"corr-{body['id']}",
            reply_to=replies.name,
            message_id=body["id"],
            headers={"x-producer": "orders"},
        )
    unknown = for_acme("to no instance")
    unknown["data"]["instanceId"] = str(uuid.uuid4())
    await producer.publish(unknown, message_id=unknown["id"], headers={"x-producer": "orders"})

    await events.wait_for(results_of("acme"), count=len(bodies) + 1, timeout=30)

    assert await moved(relay, "acme") > 0
    for message in events.messages:
        body_id = json.loads(message.body)["data"]["requestId"]
        if body_id != unknown["id"]:
            assert message.correlation_id == f"corr-{body_id}"
    assert len(await drained(replies, len(bodies))) == len(bodies)
    assert {text: count for text, count in (await sends_by_text(sandbox)).items()} == {
        body["data"]["message"]["text"]: 1 for body in bodies
    }
    (parked,) = await dead_letters(amqp, declared, expect=1)
    assert parked.message_id == unknown["id"]
    assert parked.headers["x-producer"] == "orders"
    assert parked.headers["x-relay-routing-key"] == "message.send"
    assert "x-relay-moved-from" not in parked.headers
    await channel.close()


async def test_a_moved_schedule_is_not_checked_again_against_the_time_it_is_taken(
    with_acme: StartRelay, producer: Producer, events: EventTap
) -> None:
    """Refused as past only where it first arrives: a moved command waited in the relay's own
    queue, and its schedule may have gone past meanwhile."""
    await with_acme(rate=1, lane=1)
    for index in range(4):
        await producer.publish(for_acme(f"ahead {index}"))
    almost_past = datetime.now(UTC) - timedelta(seconds=29)
    data = {
        "instanceId": INSTANCE_MAIN,
        "to": "+33612345678",
        "scheduledAt": almost_past.isoformat(),
        "message": {"type": "text", "text": "almost too late"},
    }
    schedule = {**command("msgflash.message.schedule", data), "account": "acme"}
    await producer.publish(schedule)

    (result,) = await events.wait_for(
        lambda e: e.get("data", {}).get("requestId") == schedule["id"], timeout=30
    )

    assert result["type"] == "msgflash.message.scheduled", result["data"]


async def test_a_drain_with_moved_commands_loses_none_and_a_new_relay_sends_each_once(
    with_acme: StartRelay,
    producer: Producer,
    events: EventTap,
    sandbox: SandboxHandle,
) -> None:
    first = await with_acme(rate=2, lane=1)
    bodies = [for_acme(f"drained {index}") for index in range(20)]
    for body in bodies:
        await producer.publish(body)

    async def ten_moved() -> bool:
        return await moved(first, "acme") >= 10

    await until(ten_moved, "ten commands moved to acme's queue", timeout=30)
    assert await first.drain()
    await first.stop()

    await with_acme(rate=100, lane=4)
    await events.wait_for(results_of("acme"), count=len(bodies), timeout=30)

    assert dict(await sends_by_text(sandbox)) == {b["data"]["message"]["text"]: 1 for b in bodies}


async def test_readiness_covers_every_accounts_queue_consumer(with_acme: StartRelay) -> None:
    relay = await with_acme()
    queues = {consumer.queue for consumer in relay.consumers}
    assert {relay.topology.account_queue("acme"), relay.topology.account_queue("default")} <= (
        queues
    )
    assert (await relay.readiness())["consumers"]
    (acme,) = [c for c in relay.consumers if c.queue == relay.topology.account_queue("acme")]
    await acme.cancel()
    assert not (await relay.readiness())["consumers"]


async def test_without_lanes_no_account_queue_is_declared_or_consumed(
    relay_factory: RelayFactory,
) -> None:
    relay = await relay_factory(relay_account_in_flight=0)
    assert relay.topology.account_queues == ()
    assert len(relay.consumers) == 3


async def test_a_single_account_gets_no_lanes_so_its_commands_never_take_a_second_queue(
    relay_factory: RelayFactory, events: EventTap, producer: Producer
) -> None:
    """With nobody to be fair to, moving deliveries would only double the broker's work."""
    relay = await relay_factory()  # lanes on by default, one account: default
    assert relay.topology.account_queues == ()
    commands = [text_command(f"single {i}") for i in range(40)]
    for cmd in commands:
        await producer.publish(cmd)
    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent", count=40)
    assert relay.metrics.render().count(b"relay_account_moved_total{") == 0
