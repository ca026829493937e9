"""``POST /v1/commands`` against a real relay, the real broker and the real sandbox.

A private queue bound to the commands exchange sees what the ingress published, in publish
order (one confirm-mode channel), so "nothing published" is proven by a later accepted command
arriving there alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from service.contract.amqp import Topology
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.wiring.relay import Relay
from tests.conftest import EventTap, RelayFactory, command

CE_JSON = "application/cloudevents+json"
TOKENS = ("ingress-token-a-0123456789", "ingress-token-b-9876543210")


class CommandTap:
    """Every command published on the commands exchange, whatever its routing key."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        await self.messages.put(message)

    async def next(self, timeout: float = 10) -> AbstractIncomingMessage:
        return await asyncio.wait_for(self.messages.get(), timeout)


@pytest.fixture
async def commands(amqp: AbstractConnection, declared: Topology) -> AsyncIterator[CommandTap]:
    channel = await amqp.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(declared.commands_exchange, routing_key="#")
    tap = CommandTap()
    await queue.consume(tap.on_message)
    yield tap
    await channel.close()


@pytest.fixture
async def relay(relay_factory: RelayFactory) -> Relay:
    return await relay_factory(relay_ingress_tokens=",".join(TOKENS))


async def post(
    relay: Relay,
    body: bytes | dict[str, Any],
    *,
    token: str | None = TOKENS[0],
    authorization: str | None = None,
    content_type: str = CE_JSON,
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"http://127.0.0.1:{relay.http_port}/v1/commands"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=raw, headers=headers) as response,
    ):
        return response.status, await response.json(), response.headers


# --- accepted -----------------------------------------------------------------------------
async def test_a_valid_command_is_published_with_202_and_then_sent_by_the_relay(
    relay: Relay, commands: CommandTap, events: EventTap
) -> None:
    cmd = command("msgflash.message.send", source="billing-service")

    status, answer, _ = await post(relay, cmd)

    assert (status, answer) == (202, {"id": cmd["id"]})
    published = await commands.next()
    assert published.routing_key == "message.send"
    assert published.message_id == cmd["id"]
    assert published.content_type == "application/cloudevents+json"
    assert json.loads(published.body) == cmd
    [sent] = await events.wait_for(
        lambda e: e["type"] == "msgflash.message.sent" and e["data"]["requestId"] == cmd["id"]
    )
    assert sent["data"]["requestSource"] == "billing-service"


async def test_each_configured_token_is_accepted(relay: Relay, commands: CommandTap) -> None:
    for token in TOKENS:
        cmd = command()
        status, _, _ = await post(relay, cmd, token=token, content_type="application/json")
        assert status == 202
        assert (await commands.next()).message_id == cmd["id"]


ORDERS_TOKEN = "ingress-orders-0123456789"
BILLING_TOKEN = "ingress-billing-9876543210"
BOUND = f"{ORDERS_TOKEN}=urn:orders-service,{BILLING_TOKEN}=urn:billing/*|urn:invoices"


async def test_a_token_cannot_claim_another_producers_source_to_shadow_its_command(
    relay_factory: RelayFactory, commands: CommandTap, events: EventTap
) -> None:
    relay = await relay_factory(relay_ingress_tokens=BOUND)
    real = command(source="urn:orders-service", command_id="order-4139cb")

    forged_status, forged, _ = await post(relay, real, token=BILLING_TOKEN)
    status, _, _ = await post(relay, real, token=ORDERS_TOKEN)

    assert forged_status == 403
    assert forged["error"]["code"] == "SOURCE_NOT_ALLOWED"
    assert status == 202
    assert (await commands.next()).message_id == real["id"]  # the forged one never went out
    [sent] = await events.wait_for(
        lambda e: e["type"] == "msgflash.message.sent" and e["data"]["requestId"] == real["id"]
    )
    assert sent["data"]["requestSource"] == "urn:orders-service"


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("urn:billing/eu", 202),
        ("urn:billing/eu/west", 202),
        ("urn:invoices", 202),
        ("urn:billing", 403),
        ("urn:invoices/x", 403),
        ("URN:BILLING/eu", 403),
        ("urn:orders-service", 403),
    ],
)
async def test_a_bound_token_may_use_only_the_sources_its_globs_match(
    relay_factory: RelayFactory, source: str, status: int
) -> None:
    relay = await relay_factory(relay_ingress_tokens=BOUND)
    answer, _, _ = await post(relay, command(source=source), token=BILLING_TOKEN)
    assert answer == status


async def test_a_campaign_command_goes_out_under_its_own_routing_key(
    relay: Relay, commands: CommandTap
) -> None:
    cmd = command(
        "msgflash.campaign.create",
        {
            "instanceId": INSTANCE_MAIN,
            "name": "Spring",
            "schedule": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "recipients": {"type": "all"},
            "message": {"type": "text", "text": "Hello"},
        },
    )

    status, _, _ = await post(relay, cmd)

    assert status == 202
    assert (await commands.next()).routing_key == "campaign.create"


async def test_an_id_too_long_for_an_amqp_message_id_is_refused_on_id(
    relay: Relay, commands: CommandTap
) -> None:
    cmd = command(command_id="é" * 200)  # 200 characters, 400 bytes: AMQP holds 255

    status, answer, _ = await post(relay, cmd)

    assert status == 422
    assert [d["field"] for d in answer["error"]["details"]] == ["id"]


async def test_content_type_parameters_are_not_carried_onto_the_bus(
    relay: Relay, commands: CommandTap
) -> None:
    content_type = "Application/JSON; charset=UTF-8; profile=" + "p" * 300

    status, _, _ = await post(relay, command(), content_type=content_type)

    assert status == 202
    assert (await commands.next()).content_type == "application/json"


# --- refused ------------------------------------------------------------------------------
async def sentinel(relay: Relay, commands: CommandTap) -> list[AbstractIncomingMessage]:
    """Publish one good command; return everything the tap saw up to and including it."""
    cmd = command()
    status, _, _ = await post(relay, cmd)
    assert status == 202
    seen = [await commands.next()]
    while seen[-1].message_id != cmd["id"]:
        seen.append(await commands.next())
    return seen


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", f"Basic {TOKENS[0]}", "Bearer", f"Bearer {TOKENS[0]}x"],
    ids=["missing", "unknown-token", "basic-scheme", "no-token", "token-prefix"],
)
async def test_a_request_without_a_known_bearer_token_is_401_and_not_published(
    relay: Relay, commands: CommandTap, authorization: str | None
) -> None:
    cmd = command()

    status, answer, headers = await post(relay, cmd, token=None, authorization=authorization)

    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert answer["error"]["code"] == "UNAUTHORIZED"
    assert "RELAY_INGRESS_TOKENS" in answer["error"]["message"]
    assert TOKENS[0] not in json.dumps(answer)
    assert [m.message_id for m in await sentinel(relay, commands)][:-1] == []


async def test_the_ingress_is_404_when_no_tokens_are_configured(
    relay_factory: RelayFactory,
) -> None:
    relay = await relay_factory()  # RELAY_INGRESS_TOKENS unset

    status, answer, _ = await post(relay, command())

    assert status == 404
    assert "RELAY_INGRESS_TOKENS" in answer["error"]["message"]


async def test_an_invalid_command_is_422_with_every_field_problem(
    relay: Relay, commands: CommandTap
) -> None:
    cmd = command(
        data={
            "instanceId": INSTANCE_MAIN,
            "to": "0612345678",
            "message": {"type": "text", "text": ""},
        }
    )
    del cmd["source"]

    status, answer, _ = await post(relay, cmd)

    assert status == 422
    error = answer["error"]
    assert error["code"] == "INVALID_EVENT"
    fields = {problem["field"] for problem in error["details"]}
    assert {"source", "data.to", "data.message.text"} <= fields
    assert all(problem["message"] for problem in error["details"])
    assert [m.message_id for m in await sentinel(relay, commands)][:-1] == []


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        (b"{not json", "application/json", "body"),
        (b"[]", "application/json", "body"),
        (json.dumps(command()).encode(), "text/plain", "content_type"),
        (json.dumps({**command(), "type": "msgflash.message.delete"}).encode(), CE_JSON, "type"),
    ],
    ids=["not-json", "not-an-object", "wrong-content-type", "unknown-type"],
)
async def test_what_the_consumer_would_refuse_is_refused_here_with_the_field_named(
    relay: Relay, body: bytes, content_type: str, field: str
) -> None:
    status, answer, _ = await post(relay, body, content_type=content_type)

    assert status == 422
    assert field in [problem["field"] for problem in answer["error"]["details"]]


async def test_a_body_over_the_configured_limit_is_413_naming_the_setting(
    relay_factory: RelayFactory,
) -> None:
    relay = await relay_factory(relay_ingress_tokens=TOKENS[0], relay_max_body_bytes=2048)
    text = {"type": "text", "text": "x" * 4096}
    cmd = command(data={"instanceId": INSTANCE_MAIN, "to": "+33612345678", "message": text})

    status, answer, _ = await post(relay, cmd)

    assert status == 413
    [problem] = answer["error"]["details"]
    assert problem["field"] == "body"
    assert "RELAY_MAX_BODY_BYTES" in problem["message"]


# --- broker trouble -----------------------------------------------------------------------
async def test_a_command_no_queue_takes_is_503_naming_the_unbound_routing_key(
    relay: Relay, amqp: AbstractConnection
) -> None:
    """A configuration problem (the work queue unbound), told apart from a broker outage."""
    channel = await amqp.channel()
    queue = await channel.get_queue(relay.topology.messages_queue)
    await queue.unbind(relay.topology.commands_exchange, "message.*")
    try:
        status, answer, _ = await post(relay, command())
    finally:
        await queue.bind(relay.topology.commands_exchange, "message.*")
        await channel.close()

    assert status == 503
    assert answer["error"]["code"] == "NO_QUEUE_BOUND"
    assert "no queue is bound for routing key 'message.send'" in answer["error"]["message"]


async def test_when_the_broker_cannot_confirm_it_is_503_and_a_retry_is_accepted(
    relay: Relay, commands: CommandTap
) -> None:
    """ "Broker down" for this relay only: its publisher is detached, the state the runtime
    puts it in when the broker connection is lost, so every publish raises BrokerUnavailable;
    re-attaching it to the live connection is what a reconnect does. The shared broker other
    tests use is never touched."""
    cmd = command()
    relay.publisher.detach()

    status, answer, headers = await post(relay, cmd)

    assert status == 503
    assert answer["error"]["code"] == "BROKER_UNAVAILABLE"
    assert int(headers["Retry-After"]) > 0
    connection = relay.broker.connection
    assert connection is not None
    await relay.publisher.attach(connection)
    status, _, _ = await post(relay, cmd)
    assert status == 202
    assert (await commands.next()).message_id == cmd["id"]
