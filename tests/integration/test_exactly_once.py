"""Exactly once at the edges: late answers, live and dead holders, quotas that never lift,
429 storms, oversized ids and replays; real RabbitMQ, the real sandbox, a real relay."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractConnection

from service.app import Relay
from service.bus.deadletters import DeadLetterQueue
from service.contract.amqp import Topology
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from tests.conftest import (
    SANDBOX_CONFIG,
    EventTap,
    Producer,
    RelayFactory,
    SandboxHandle,
    command,
    relay_log,
    sends_by_text,
    text_command,
)

QUOTA = "MONTHLY_OUTBOUND_QUOTA_EXCEEDED"


def campaign_command(name: str) -> dict[str, Any]:
    return command(
        "msgflash.campaign.create",
        {
            "instanceId": INSTANCE_MAIN,
            "name": name,
            "schedule": "2030-12-01T08:00:00+00:00",
            "recipients": {"type": "all"},
            "message": {"type": "text", "text": "Hello all"},
        },
    )


async def lose_the_answer_to_one_campaign_create(
    sandbox: SandboxHandle, producer: Producer, cmd: dict[str, Any]
) -> None:
    """MsgFlash creates the campaign, then the connection drops before the answer."""
    await sandbox.set_faults(drop_after_rate=1.0, paths=["/api/v1/campaigns"])
    await producer.publish(cmd)
    for _ in range(200):
        if await sandbox.requests("/api/v1/campaigns", method="POST"):
            break
        await asyncio.sleep(0.05)
    await sandbox.clear_faults()


@pytest.mark.parametrize("sandbox_config", [{**SANDBOX_CONFIG, "campaign_list": True}])
async def test_a_campaign_whose_answer_was_lost_is_looked_up_and_created_once(
    relay_factory: RelayFactory, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await relay_factory(relay_retry_max_attempts=1)
    await lose_the_answer_to_one_campaign_create(sandbox, producer, campaign_command("Late"))

    (created,) = await events.wait_for(lambda e: e["type"] == "msgflash.campaign.created")
    status, listed = await sandbox.api("GET", "/api/v1/campaigns")
    assert status == 200
    assert [c["id"] for c in listed["data"]["campaigns"]] == [created["data"]["campaignId"]]
    assert len(await sandbox.requests("/api/v1/campaigns", method="POST")) == 1


async def test_without_a_campaign_list_a_late_campaign_is_parked_not_created_twice(
    relay_factory: RelayFactory, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    """MsgFlash's public API documents no campaign list: the lookup is refused, and the relay
    parks the command as OUTCOME_UNKNOWN rather than send the campaign again."""
    await relay_factory(relay_retry_max_attempts=1)
    await lose_the_answer_to_one_campaign_create(sandbox, producer, campaign_command("Late"))

    (failed,) = await events.wait_for(lambda e: e["type"] == "msgflash.campaign.failed")
    assert failed["data"]["error"]["code"] == "OUTCOME_UNKNOWN"
    assert len(await sandbox.requests("/api/v1/campaigns", method="POST")) == 1


async def test_a_live_holders_long_call_is_never_taken_from_it(
    relay_factory: RelayFactory, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await relay_factory(relay_lease_seconds=1, relay_msgflash_timeout=30)
    await sandbox.set_faults(latency_ms=4000, paths=["/api/v1/messages/send"])
    cmd = text_command("long call")
    await producer.publish(cmd)
    await producer.publish(cmd)  # a second delivery keeps asking while the call lasts 4 leases

    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent", count=2, timeout=30)
    assert not [e for e in events.events if e["type"] == "msgflash.message.failed"]
    assert len({e["id"] for e in events.events if e["type"] == "msgflash.message.sent"}) == 1
    assert await sends_by_text(sandbox) == Counter({"long call": 1})


async def test_a_send_under_a_quota_that_never_lifts_fails_in_bounded_time_and_replays(
    relay_factory: RelayFactory,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    amqp: AbstractConnection,
    topology: Topology,
) -> None:
    relay = await relay_factory(relay_quota_max_wait_seconds=5, relay_quota_probe_seconds=1)
    await sandbox.admin("PUT", "/_sandbox/limits", {"monthlyOutboundQuota": 0})
    send = text_command("quota send")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    schedule = command(
        "msgflash.message.schedule",
        {**send["data"], "message": {"type": "text", "text": "quota later"}, "scheduledAt": soon},
    )
    await producer.publish(send)
    await producer.publish(schedule)

    (exhausted,) = await events.wait_for(lambda e: e["type"] == "msgflash.quota.exhausted")
    assert exhausted["data"]["maxWaitSeconds"] == 5
    assert exhausted["data"]["probeSeconds"] == 1
    assert exhausted["data"]["nextProbeAt"]
    # A schedule gives up once its time has passed, well before a send's bound.
    await events.wait_for(
        lambda e: (
            e["type"] == "msgflash.message.failed" and e["data"]["requestId"] == schedule["id"]
        )
    )
    send_failed = [e for e in events.of_request(send["id"]) if e["type"].endswith(".failed")]
    assert not send_failed, "the schedule waited for the bound of a send, not for its time"
    failed = await events.wait_for(
        lambda e: e["type"] == "msgflash.message.failed", count=2, timeout=30
    )
    assert {e["data"]["requestId"] for e in failed} == {send["id"], schedule["id"]}
    assert {e["data"]["error"]["code"] for e in failed} == {QUOTA}
    assert "RELAY_QUOTA_MAX_WAIT_SECONDS" in failed[0]["data"]["error"]["message"]

    await sandbox.admin("PUT", "/_sandbox/limits", {})
    replayed = await DeadLetterQueue(amqp, topology).replay(
        relay.publisher, lambda p: p.code == QUOTA
    )
    assert {p.id for p in replayed} == {send["id"], schedule["id"]}
    accepted = await events.wait_for(
        lambda e: e["type"] in ("msgflash.message.sent", "msgflash.message.scheduled"), count=2
    )
    assert {e["data"]["requestId"] for e in accepted} == {send["id"], schedule["id"]}


async def test_a_15_second_429_storm_costs_a_small_multiple_of_a_clean_runs_calls(
    relay_factory: RelayFactory, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await relay_factory(relay_retry_delays="1,2,4,8,16")
    await sandbox.set_faults(force_429_rate=1.0, duration_seconds=15, paths=["/api/v1/messages"])
    commands = [text_command(f"storm {i}") for i in range(20)]
    for cmd in commands:
        await producer.publish(cmd)

    await events.wait_for(
        lambda e: e["type"] == "msgflash.message.sent", count=len(commands), timeout=120
    )
    calls = await sandbox.requests("/api/v1/messages/send", method="POST")
    # A clean run makes one call per command.
    assert len(calls) <= 3 * len(commands), f"{len(calls)} calls for {len(commands)} commands"
    assert await sends_by_text(sandbox) == Counter({f"storm {i}": 1 for i in range(20)})


async def test_a_retry_after_holds_every_call_of_the_key_until_it_passes(
    relay_factory: RelayFactory, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await relay_factory()
    await sandbox.set_faults(force_429_count=1, force_429_retry_after=2)
    await producer.publish(text_command("first"))
    for _ in range(200):  # the 429 has been answered before the second command comes
        sent = await sandbox.requests("/api/v1/messages/send", method="POST")
        if any(call["status"] == 429 for call in sent):
            break
        await asyncio.sleep(0.02)
    await producer.publish(text_command("second"))  # not refused itself, held all the same

    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent", count=2)
    refused, *accepted = await sandbox.requests("/api/v1/messages/send", method="POST")
    assert refused["status"] == 429 and len(accepted) == 2
    assert all(call["at"] - refused["at"] >= 1.9 for call in accepted), (refused, accepted)


async def test_a_1_mb_id_is_echoed_as_a_marked_prefix(
    relay_factory: RelayFactory, events: EventTap, producer: Producer
) -> None:
    await relay_factory(relay_max_body_bytes=4_000_000)
    huge = "x" * 1_000_000
    # The lines as the relay writes them: its bound context (requestId, requestSource) merged.
    with relay_log() as log:
        await producer.publish({**text_command("huge id"), "id": huge, "source": "s" * 1_000_000})
        (failed,) = await events.wait_for(lambda e: e["type"] == "msgflash.message.failed")
        await log.wait_handled()
    logs = log.entries

    assert failed["data"]["error"]["code"] == "INVALID_EVENT"
    assert len(json.dumps(failed)) < 4096
    assert failed["data"]["requestId"].startswith("x" * 64)
    assert failed["data"]["requestId"].endswith("[truncated, 1000000 bytes]")
    assert failed["data"]["requestSource"].endswith("[truncated, 1000000 bytes]")
    (outcome,) = [entry for entry in logs if entry["event"] == "command_handled"]
    assert outcome["requestId"] == failed["data"]["requestId"]
    lines = [json.dumps(entry, default=repr) for entry in logs]
    longest = max(lines, key=len)
    assert len(longest) < 4096, f"a {len(longest)}-character log line: {longest[:200]}…"


async def test_dlq_replay_replays_each_parked_command_at_most_once_per_run(
    relay: Relay, events: EventTap, producer: Producer, amqp: AbstractConnection, topology: Topology
) -> None:
    # Each fails at once and for good (an instance MsgFlash does not have), so it is parked
    # again while the replay is still running.
    nowhere = {**text_command("x")["data"], "instanceId": "00000000-0000-4000-8000-00000000dead"}
    commands = [command(data=nowhere) for _ in range(100)]
    for cmd in commands:
        await producer.publish(cmd)
    await events.wait_for(lambda e: e["type"] == "msgflash.message.failed", count=100, timeout=60)

    replayed = await DeadLetterQueue(amqp, topology).replay(relay.publisher, lambda p: True)

    assert sorted(p.id for p in replayed) == sorted(c["id"] for c in commands)
