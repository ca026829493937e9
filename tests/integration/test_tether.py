"""tether.campaign.create end to end: real RabbitMQ, the Tether sandbox, a real relay."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractConnection
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.bus.deadletters import DeadLetterQueue
from service.contract.amqp import Topology
from service.providers.tether.quota import LOOKAHEAD_DAYS
from service.providers.tether.sandbox.app import create_tether_sandbox_app
from service.providers.tether.sandbox.config import (
    DEFAULT_API_TOKEN,
    DEFAULT_EMAIL,
    DEFAULT_PASSWORD,
    TetherSandboxConfig,
)
from service.tracing.spans import Tracing
from service.wiring.relay import Relay
from tests.conftest import EventTap, Producer, RelayFactory, command
from tests.integration.conftest import simulator_process
from tests.integration.test_drain import until
from tests.unit.test_pacing import most_in_one_second

TETHER = "tether.campaign.create"
EXISTING = "665f1a0c0e0a4b001a2c9f01"
DAY = "2030-05-20"
DATA: dict[str, Any] = {
    "name": "Q2 Lead Gen",
    "message": "Hi {{firstName}}, are you still interested?",
    "newContacts": [{"firstName": "Jamie", "lastName": "Doe", "phoneNumber": "+14155550133"}],
    "selectedExistingContacts": [{"_id": EXISTING, "firstName": "Casey"}],
    "scheduleDate": "2030-05-20T11:00:00-04:00",
}


@dataclass
class TetherHandle:
    url: str
    session: aiohttp.ClientSession

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.url}{path}", json=body) as response:
            assert response.status < 300, await response.text()
            return (await response.json())["data"]

    async def requests(self, path: str = "/api/", method: str | None = None) -> list[Any]:
        """Requests under ``path``; with ``method``, those to exactly ``path``."""
        entries = await self.admin("GET", f"/_sandbox/requests?path={path}")
        if method is None:
            return list(entries)
        return [e for e in entries if e["method"] == method and e["path"] == path]


@pytest.fixture
def tether_config() -> dict[str, Any]:
    return {}


@pytest.fixture
async def tether(tether_config: dict[str, Any]) -> AsyncIterator[TetherHandle]:
    app = create_tether_sandbox_app(TetherSandboxConfig(**tether_config))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield TetherHandle(str(server.make_url("")).rstrip("/"), session)
    await server.close()


async def tether_relay(relay_factory: RelayFactory, tether: TetherHandle, **env: Any) -> Relay:
    settings = {
        "tether_base_url": tether.url,
        "tether_email": DEFAULT_EMAIL,
        "tether_password": DEFAULT_PASSWORD,
        "tether_rate_limit": 1000,
        **env,
    }
    return await relay_factory(**settings)


def campaign(**data: Any) -> dict[str, Any]:
    return command(TETHER, {**DATA, **data})


def outcome_of(cmd: dict[str, Any]) -> Any:
    return lambda e: e["data"].get("requestId") == cmd["id"] and e["type"].startswith("tether.")


async def test_the_command_maps_exactly_onto_tethers_request(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    await tether_relay(relay_factory, tether)
    cmd = campaign(isAutopilot=True, process="64eea1110000000000000001")
    await producer.publish(cmd)
    (created,) = await events.wait_for(outcome_of(cmd))
    assert created["type"] == "tether.campaign.created", created
    [check] = await tether.requests("/api/campaigns/validate-date")
    assert check["body"] == {"scheduledISO": "2030-05-20T15:00:00.000Z", "contactCount": 2}
    [create] = await tether.requests("/api/campaigns", "POST")
    assert create["path"] == "/api/campaigns" and create["auth"] == "jwt"
    assert create["body"] == {
        "name": "Q2 Lead Gen",
        "message": "Hi {{firstName}}, are you still interested?",
        "newContacts": [{"firstName": "Jamie", "lastName": "Doe", "phoneNumber": "+14155550133"}],
        "selectedExistingContacts": [{"_id": EXISTING, "firstName": "Casey"}],
        "type": "sms",
        "isAutopilot": True,
        "scheduleDate": "2030-05-20T15:00:00.000Z",
        "process": "64eea1110000000000000001",
    }
    [held] = await tether.admin("GET", "/_sandbox/campaigns")
    data = created["data"]
    assert (data["campaignId"], data["status"]) == (held["_id"], "scheduled")
    assert (data["scheduleDate"], data["recipients"], data["attempts"]) == (
        "2030-05-20T15:00:00.000Z",
        2,
        1,
    )


async def test_many_commands_share_one_login(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    await tether_relay(relay_factory, tether)
    commands = [campaign(name=f"Batch {i}", quota="skip") for i in range(6)]
    for cmd in commands:
        await producer.publish(cmd)
    await events.wait_for(lambda e: e["type"] == "tether.campaign.created", count=6)
    assert len(await tether.requests("/api/auth/login")) == 1


async def test_an_expired_token_costs_one_new_login(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    await tether_relay(relay_factory, tether)
    first, second = campaign(name="One", quota="skip"), campaign(name="Two", quota="skip")
    await producer.publish(first)
    await events.wait_for(outcome_of(first))
    await tether.admin("POST", "/_sandbox/tokens/expire")
    await producer.publish(second)
    (created,) = await events.wait_for(outcome_of(second))
    assert created["type"] == "tether.campaign.created"
    assert len(await tether.requests("/api/auth/login")) == 2
    creates = await tether.requests("/api/campaigns", "POST")
    assert [c["status"] for c in creates] == [200, 401, 200]


async def test_refused_credentials_fail_the_command_without_retrying(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    relay = await tether_relay(relay_factory, tether, tether_password="not-the-password")
    cmd = campaign()
    await producer.publish(cmd)
    (failed,) = await events.wait_for(outcome_of(cmd))
    assert failed["type"] == "tether.campaign.failed"
    error = failed["data"]["error"]
    assert (error["code"], error["retryable"]) == ("TETHER_AUTH_FAILED", False)
    assert "TETHER_EMAIL" in error["message"] and "not-the-password" not in error["message"]
    assert len(await tether.requests("/api/")) == 1  # one login, nothing else
    assert any("refused" in w for w in relay.readiness_warnings())


@pytest.mark.parametrize(
    ("shape", "code"),
    [("string", "HTTP_400"), ("nested", "daily_quota_exceeded"), ("flat", "daily_quota_exceeded")],
)
async def test_each_error_shape_reaches_the_failure_event(
    relay_factory: RelayFactory,
    tether: TetherHandle,
    events: EventTap,
    producer: Producer,
    shape: str,
    code: str,
) -> None:
    await tether.admin("PUT", "/_sandbox/error-shape", {"shape": shape})
    await tether.admin("PUT", "/_sandbox/quota", {"sent": {DAY: 500}})
    await tether_relay(relay_factory, tether)
    cmd = campaign(quota="skip")  # the create itself is refused
    await producer.publish(cmd)
    (failed,) = await events.wait_for(outcome_of(cmd))
    error = failed["data"]["error"]
    assert (error["code"], error["httpStatus"]) == (code, 400)
    assert error["message"].startswith("Not enough daily SMS quota on 2030-05-20")


@pytest.mark.parametrize("tether_config", [{"daily_limit": 3}])
async def test_a_refused_quota_check_names_the_next_date_and_creates_nothing(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    await tether.admin("PUT", "/_sandbox/quota", {"sent": {DAY: 2}})
    await tether_relay(relay_factory, tether)
    cmd = campaign()
    await producer.publish(cmd)
    (failed,) = await events.wait_for(outcome_of(cmd))
    assert failed["type"] == "tether.campaign.failed"
    [slot] = await tether.requests("/api/campaigns/next-available-slot")
    assert slot["query"] == {"contactCount": "2"}
    error = failed["data"]["error"]
    assert error["code"] == "TETHER_DAILY_QUOTA_EXCEEDED"
    [detail] = error["details"]
    # Tether's next slot counts from today; the day after the full one is the first with room.
    assert detail == {
        "field": "data.scheduleDate",
        "message": f"Only 1 SMS remaining on {DAY}",
        "nextAvailableDate": "2030-05-21",
    }
    assert "the next date with room for 2 is 2030-05-21" in error["message"]
    assert "1 of the day's 3 SMS left" in error["message"]
    assert await tether.requests("/api/campaigns", "POST") == []
    assert await has_room(tether, "2030-05-21", 2)


@pytest.mark.parametrize("tether_config", [{"daily_limit": 3}])
async def test_a_full_day_years_ahead_is_told_a_later_date_with_room_not_today(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    full = {"2030-05-20": 3, "2030-05-21": 3, "2030-05-22": 2}
    await tether.admin("PUT", "/_sandbox/quota", {"sent": full})
    await tether_relay(relay_factory, tether)
    cmd = campaign()
    await producer.publish(cmd)
    (failed,) = await events.wait_for(outcome_of(cmd))
    [detail] = failed["data"]["error"]["details"]
    named = date.fromisoformat(detail["nextAvailableDate"])
    assert named >= date.fromisoformat(DAY)
    assert named == date(2030, 5, 23)  # the first on or after it with room for two
    checks = await tether.requests("/api/campaigns/validate-date")
    assert [c["body"]["scheduledISO"][:10] for c in checks] == [
        "2030-05-20",
        "2030-05-21",
        "2030-05-22",
        "2030-05-23",
    ]
    assert await has_room(tether, named.isoformat(), 2)


@pytest.mark.parametrize("tether_config", [{"daily_limit": 0}])
async def test_with_no_room_in_the_days_looked_at_no_date_is_named(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    await tether_relay(relay_factory, tether)
    cmd = campaign()
    await producer.publish(cmd)
    (failed,) = await events.wait_for(outcome_of(cmd))
    error = failed["data"]["error"]
    assert "nextAvailableDate" not in error["details"][0]
    assert "counts from today" in error["message"]
    checks = await tether.requests("/api/campaigns/validate-date")
    assert len(checks) == 1 + LOOKAHEAD_DAYS
    assert await tether.requests("/api/campaigns", "POST") == []


async def has_room(tether: TetherHandle, day: str, count: int) -> bool:
    """Whether Tether's validate-date finds room for ``count`` on ``day``, asked directly."""
    login = {"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}
    async with tether.session.post(f"{tether.url}/api/auth/login", json=login) as response:
        token = (await response.json())["token"]
    body = {"scheduledISO": f"{day}T15:00:00.000Z", "contactCount": count}
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{tether.url}/api/campaigns/validate-date"
    async with tether.session.post(url, json=body, headers=headers) as response:
        return bool((await response.json())["available"])


@pytest.mark.parametrize(
    "tether_config",
    [{"daily_limit": 2}, {"daily_limit": 2, "segment_time": "org_local"}],
    ids=["utc", "org-local"],  # the zone Tether reads firstSegmentTime in
)
async def test_segment_creates_one_campaign_per_segment(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    await tether_relay(relay_factory, tether)
    extra = [{"firstName": "Ana", "phoneNumber": "+33612345678"}]
    cmd = campaign(quota="segment", newContacts=[*DATA["newContacts"], *extra])
    await producer.publish(cmd)
    (created,) = await events.wait_for(outcome_of(cmd))
    segments = created["data"]["segments"]
    assert [(s["scheduleDate"], s["recipients"]) for s in segments] == [
        ("2030-05-20T15:00:00.000Z", 2),
        ("2030-05-21T15:00:00.000Z", 1),
    ]
    held = await tether.admin("GET", "/_sandbox/campaigns")
    assert [c["name"] for c in held] == ["Q2 Lead Gen (1/2)", "Q2 Lead Gen (2/2)"]
    assert [c["_id"] for c in held] == [s["campaignId"] for s in segments]
    assert created["data"]["recipients"] == 3


@pytest.mark.parametrize("tether_config", [{"daily_limit": 1}])
async def test_a_split_command_failing_part_way_creates_only_the_missing_segments_once(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    # Matching POSTs: auto-segment, then the creates. Two pass, so the second create meets
    # 503s until the in-process retries are spent and the command is deferred part-way.
    fault = {"pass_count": 2, "error_count": 2, "error_statuses": [503], "methods": ["POST"]}
    await tether.admin("PUT", "/_sandbox/faults", {**fault, "paths": ["/api/campaigns"]})
    await tether_relay(relay_factory, tether, relay_retry_max_attempts=2)
    extra = [{"firstName": "Ana", "phoneNumber": "+33612345678"}]
    cmd = campaign(quota="segment", newContacts=[*DATA["newContacts"], *extra])
    await producer.publish(cmd)
    (created,) = await events.wait_for(outcome_of(cmd))
    assert created["type"] == "tether.campaign.created"
    held = await tether.admin("GET", "/_sandbox/campaigns")
    assert [c["name"] for c in held] == [f"Q2 Lead Gen ({k}/3)" for k in (1, 2, 3)]
    assert [c["_id"] for c in held] == [s["campaignId"] for s in created["data"]["segments"]]
    assert [c["scheduleDate"][:10] for c in held] == ["2030-05-20", "2030-05-21", "2030-05-22"]
    recipients = [
        *(contact["phoneNumber"] for c in held for contact in c["newContacts"]),
        *(contact["_id"] for c in held for contact in c["selectedExistingContacts"]),
    ]
    assert sorted(recipients) == sorted(["+14155550133", "+33612345678", EXISTING])
    creates = await tether.requests("/api/campaigns", "POST")
    assert [r["status"] for r in creates] == [200, 503, 503, 200, 200]
    assert created["data"]["attempts"] == len(creates)
    assert len(await tether.requests("/api/campaigns", "GET")) == 1  # the redelivery's look


@pytest.mark.parametrize(
    "tether_config",
    [{"list_shape": shape} for shape in ("data", "campaigns", "bare")],
    ids=["data", "campaigns", "bare"],
)
async def test_a_late_answer_is_found_in_the_list_and_never_created_twice(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    late = {"late_answer_seconds": 30, "late_answer_count": 1, "methods": ["POST"]}
    await tether.admin("PUT", "/_sandbox/faults", {**late, "paths": ["/api/campaigns"]})
    await tether_relay(relay_factory, tether, relay_tether_timeout=1)
    cmd = campaign(quota="skip")
    await producer.publish(cmd)
    (created,) = await events.wait_for(outcome_of(cmd))
    assert created["type"] == "tether.campaign.created"
    [held] = await tether.admin("GET", "/_sandbox/campaigns")
    assert created["data"]["campaignId"] == held["_id"]
    assert len(await tether.requests("/api/campaigns", "POST")) == 1
    assert len(await tether.requests("/api/campaigns", "GET")) == 1


@pytest.mark.parametrize("tether_config", [{"missing_schedule": "reject"}])
async def test_a_tether_requiring_a_schedule_date_refuses_a_command_without_one(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    await tether_relay(relay_factory, tether)
    cmd = command(TETHER, {k: v for k, v in DATA.items() if k != "scheduleDate"})
    await producer.publish(cmd)
    (failed,) = await events.wait_for(outcome_of(cmd))
    error = failed["data"]["error"]
    assert (error["httpStatus"], error["retryable"]) == (400, False)
    assert error["message"] == "Missing required field: scheduleDate"
    assert "scheduleDate" not in (await tether.requests("/api/campaigns", "POST"))[0]["body"]


@pytest.mark.parametrize(
    "data",
    [
        {"newContacts": [], "selectedExistingContacts": []},
        {"newContacts": [{"firstName": "J", "phoneNumber": "0612345678"}]},
        {"selectedExistingContacts": [{"_id": "665f1a0c-not-hex"}]},
    ],
    ids=["no-recipient", "bad-phone", "non-hex-id"],
)
async def test_an_invalid_command_fails_before_anything_is_called(
    relay_factory: RelayFactory,
    tether: TetherHandle,
    events: EventTap,
    producer: Producer,
    data: dict[str, Any],
) -> None:
    await tether_relay(relay_factory, tether)
    cmd = campaign(**data)
    await producer.publish(cmd)
    (failed,) = await events.wait_for(outcome_of(cmd))
    assert failed["type"] == "tether.campaign.failed"
    assert failed["data"]["error"]["code"] == "INVALID_EVENT"
    assert await tether.requests("/api/") == []


async def test_a_command_delivered_twice_creates_one_campaign(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    await tether_relay(relay_factory, tether)
    cmd = campaign(quota="skip")
    await producer.publish(cmd)
    await producer.publish(cmd)  # same source and id: the second delivery finds it claimed or done
    first, second = await events.wait_for(outcome_of(cmd), count=2)
    assert (first["type"], second["type"]) == ("tether.campaign.created",) * 2
    assert first["data"]["campaignId"] == second["data"]["campaignId"]
    [held] = await tether.admin("GET", "/_sandbox/campaigns")
    assert held["_id"] == first["data"]["campaignId"]
    assert len(await tether.requests("/api/campaigns", "POST")) == 1


async def test_without_a_tether_account_a_command_is_parked_and_replays_once_there_is_one(
    relay_factory: RelayFactory,
    tether: TetherHandle,
    events: EventTap,
    producer: Producer,
    amqp: AbstractConnection,
    topology: Topology,
    tmp_path: Path,
) -> None:
    state = {"relay_state_url": f"sqlite:///{tmp_path / 'state.db'}"}  # kept across the restart
    without = await relay_factory(**state)
    cmd = campaign(quota="skip")
    await producer.publish(cmd)
    (failed,) = await events.wait_for(outcome_of(cmd))
    error = failed["data"]["error"]
    assert (failed["type"], error["code"], error["retryable"]) == (
        "tether.campaign.failed",
        "PROVIDER_NOT_CONFIGURED",
        False,
    )
    assert "TETHER_BASE_URL" in error["message"]
    dead_letters = DeadLetterQueue(amqp, topology)
    [parked] = await dead_letters.peek()
    assert (parked.id, parked.code) == (cmd["id"], "PROVIDER_NOT_CONFIGURED")

    # What the error says to do: configure Tether, restart, replay.
    await without.drain()
    await without.stop()
    relay = await tether_relay(relay_factory, tether, **state)
    replayed = await dead_letters.replay(relay.publisher, lambda p: p.code == parked.code)
    assert [p.id for p in replayed] == [cmd["id"]]
    (created,) = await events.wait_for(
        lambda e: outcome_of(cmd)(e) and e["type"] == "tether.campaign.created"
    )
    [held] = await tether.admin("GET", "/_sandbox/campaigns")
    assert held["_id"] == created["data"]["campaignId"]
    assert await dead_letters.peek() == []


async def test_a_tether_429_is_retried_and_the_command_then_succeeds(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    limited = {"force_429_count": 2, "paths": ["/api/campaigns"], "methods": ["POST"]}
    await tether.admin("PUT", "/_sandbox/faults", limited)
    await tether_relay(relay_factory, tether)
    cmd = campaign(quota="skip")
    await producer.publish(cmd)
    (created,) = await events.wait_for(outcome_of(cmd))
    assert created["type"] == "tether.campaign.created"
    assert created["data"]["attempts"] == 3
    creates = await tether.requests("/api/campaigns", "POST")
    assert [c["status"] for c in creates] == [429, 429, 200]
    # A 429 is refused before anything is made: nothing to look up before the next try.
    assert await tether.requests("/api/campaigns", "GET") == []
    assert len(await tether.admin("GET", "/_sandbox/campaigns")) == 1


async def test_every_tether_call_is_paced_at_the_accounts_rate_limit(
    relay_factory: RelayFactory, events: EventTap, producer: Producer, tmp_path: Path
) -> None:
    rate = 5
    async with (
        simulator_process(tmp_path, "--provider", "tether") as url,
        aiohttp.ClientSession() as session,
    ):
        tether = TetherHandle(url, session)
        await tether_relay(relay_factory, tether, tether_rate_limit=rate)
        commands = [campaign(name=f"Paced {i}") for i in range(15)]
        for cmd in commands:
            await producer.publish(cmd)
        await events.wait_for(lambda e: e["type"] == "tether.campaign.created", count=15)
        calls = await tether.requests("/api/")
    # Logins count too: one, then per command its quota check and its create.
    assert [c["path"] for c in calls].count("/api/auth/login") == 1
    assert len(calls) == 1 + 2 * len(commands)
    assert most_in_one_second([c["at"] for c in calls]) <= rate


# Next to `default` (MsgFlash and Tether), MsgFlash account `acme` (on the default key) and Tether
# organisation `crm`: each provider has two accounts, so each has lanes.
LANES_ACCOUNTS_FILE = """
accounts:
  - name: acme
    provider: msgflash
    apiKeyEnv: MSGFLASH_API_KEY
  - name: crm
    provider: tether
    baseUrl: {url}
    tokenEnv: TETHER_TOKEN_CRM
"""
BATCH = 20


@pytest.mark.parametrize(
    "lanes",
    [
        pytest.param(None, id="one-account"),
        pytest.param({}, id="lanes-default-sizes"),
        pytest.param({"relay_account_in_flight": 8}, id="lane-as-large-as-tether-prefetch"),
    ],
)
async def test_a_tether_503_storm_leaves_msgflash_latency_unchanged(
    relay_factory: RelayFactory,
    tether: TetherHandle,
    events: EventTap,
    producer: Producer,
    tmp_path: Path,
    lanes: dict[str, Any] | None,
) -> None:
    """MsgFlash publish -> result latency of a batch before and during a storm of Tether 503s
    on the same account, ``default``: a retrying Tether command must never hold a slot a
    MsgFlash command needs. The bound, twice the p95 before plus a second, is loose enough for
    a loaded machine; a batch held back waits for the storm's retries, tens of seconds."""
    env: dict[str, Any] = {}
    if lanes is not None:
        path = tmp_path / "accounts.yaml"
        path.write_text(LANES_ACCOUNTS_FILE.format(url=tether.url))
        env = {"relay_accounts_file": str(path), "tether_token_crm": DEFAULT_API_TOKEN, **lanes}
    relay = await tether_relay(relay_factory, tether, **env)
    before = await msgflash_latencies(events, producer, wait=60)
    bound = 2 * p95(before) + 1

    await tether.admin("PUT", "/_sandbox/faults", {"error_rate": 1.0, "error_statuses": [503]})
    prefetch = relay.settings.relay_tether_prefetch
    for i in range(2 * prefetch):
        await producer.publish(campaign(name=f"Storm {i}", quota="skip"))

    async def storm_is_held() -> bool:  # every Tether delivery the relay may hold, retrying
        return relay.pipeline.in_flight >= prefetch and await _count(tether, "/api/") >= 2

    await until(storm_is_held, "the relay to hold the Tether storm's deliveries")
    during = await msgflash_latencies(events, producer, wait=bound + 20)

    print(f"MsgFlash p95 before the storm {p95(before):.3f}s, during it {p95(during):.3f}s")
    assert p95(during) <= bound, (
        f"MsgFlash publish->result p95 was {p95(during):.2f}s during the Tether storm, "
        f"{p95(before):.2f}s before it (bound {bound:.2f}s); during: {sorted(during)}"
    )
    # The storm outlasted the measurement: Tether is still being retried, nothing was created.
    # (Calls are spaced by backoff of up to seconds: waited for, not sampled.)
    calls = await _count(tether, "/api/")

    async def retried_since() -> bool:
        return await _count(tether, "/api/") > calls

    await until(retried_since, "the Tether storm's commands to be retried again", timeout=30)
    assert not [e for e in events.events if e["type"] == "tether.campaign.created"]


async def test_tether_commands_past_their_lane_wait_in_the_accounts_tether_queue(
    relay_factory: RelayFactory,
    tether: TetherHandle,
    events: EventTap,
    producer: Producer,
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(LANES_ACCOUNTS_FILE.format(url=tether.url))
    await tether.admin("PUT", "/_sandbox/faults", {"latency_ms": 200})  # the lane stays full
    relay = await tether_relay(
        relay_factory,
        tether,
        relay_accounts_file=str(path),
        tether_token_crm=DEFAULT_API_TOKEN,
        relay_tether_prefetch=2,  # a Tether lane of 1
    )
    queue = relay.topology.account_queue("default", "tether")
    assert queue == f"{relay.topology.prefix}.account.default.tether"
    assert queue in {consumer.queue for consumer in relay.consumers}
    commands = [campaign(name=f"Lane {i}", quota="skip") for i in range(4)]
    for cmd in commands:
        await producer.publish(cmd)
    created = await events.wait_for(lambda e: e["type"] == "tether.campaign.created", count=4)
    assert {e["data"]["requestId"] for e in created} == {c["id"] for c in commands}
    assert len(await tether.admin("GET", "/_sandbox/campaigns")) == 4
    text = relay.metrics.render().decode()
    moved = re.search(
        r'relay_account_moved_total\{account="default",provider="tether"\} (\S+)', text
    )
    assert moved is not None and float(moved[1]) >= 1
    assert 'relay_account_moved_total{account="default",provider="msgflash"} 0.0' in text


async def msgflash_latencies(events: EventTap, producer: Producer, *, wait: float) -> list[float]:
    """Seconds from publish to result (the result event's time) of BATCH MsgFlash commands
    published at once; one with no result after ``wait`` counts with the time it waited."""
    published: dict[str, float] = {}
    for cmd in [command() for _ in range(BATCH)]:
        published[cmd["id"]] = time.time()
        await producer.publish(cmd)

    def sent(event: dict[str, Any]) -> bool:
        return event["type"] == "msgflash.message.sent" and event["data"]["requestId"] in published

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            await events.wait_for(sent, count=BATCH, timeout=wait + 1)
    ended = time.time()
    results = {
        e["data"]["requestId"]: datetime.fromisoformat(e["time"]).timestamp()
        for e in events.events
        if sent(e)
    }
    return [results.get(id_, ended) - at for id_, at in published.items()]


def p95(values: list[float]) -> float:
    """Nearest rank: the value 95 % of the others do not exceed."""
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


async def _count(tether: TetherHandle, path: str) -> int:
    return len(await tether.requests(path))


async def test_each_tether_call_is_a_client_span_whose_traceparent_tether_receives(
    relay_factory: RelayFactory, tether: TetherHandle, events: EventTap, producer: Producer
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    await tether_relay(relay_factory, tether, tracing=Tracing(provider))
    cmd = campaign(quota="skip")
    await producer.publish(cmd)
    await events.wait_for(outcome_of(cmd))

    [create] = await tether.requests("/api/campaigns", "POST")
    spans = {
        f"{span.context.trace_id:032x}-{span.context.span_id:016x}": span
        for span in exporter.get_finished_spans()
    }
    _, trace_id, span_id, _ = create["headers"]["traceparent"].split("-")
    sent_by = spans[f"{trace_id}-{span_id}"]
    assert sent_by.kind is SpanKind.CLIENT
    assert (sent_by.attributes or {}).get("http.request.method") == "POST"
    assert sent_by.parent is not None  # a child of the command's consumer span
