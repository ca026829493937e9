"""``POST /webhooks/msgflash`` against a real relay, the real broker and the real sandbox.

Signatures are made with the sandbox's own signer, so the relay is checked against an
independent implementation of MsgFlash's rule. "Nothing published" is proven with a sentinel:
the relay publishes on one confirm-mode channel, so once a later accepted delivery reaches the
tap, anything an earlier request had published would have reached it first.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from service.contract.wire import utc_millis
from service.providers.msgflash.sandbox.delivery import sign
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.wiring.relay import Relay
from tests.conftest import EventTap, Producer, RelayFactory, SandboxHandle, command

SECRET = "whsec-current-0123456789"
OLD_SECRET = "whsec-previous-9876543210"
WEBHOOK_TYPE = "msgflash.webhook."


@pytest.fixture
def sandbox_config() -> dict[str, Any]:
    # Slow enough lifecycle steps that a delivery never outruns the relay's own bookkeeping.
    return {
        "rate_limit_per_second": None,
        "lifecycle_step_seconds": 0.2,
        "webhook_retry_base_seconds": 0.05,
    }


@pytest.fixture
async def relay(relay_factory: RelayFactory) -> Relay:
    return await relay_factory(msgflash_webhook_secret=SECRET)


def delivery(event: str = "message.delivered", **fields: Any) -> dict[str, Any]:
    """A flat delivery as MsgFlash's guide documents it, with a fresh messageId."""
    return {
        "event": event,
        "instanceId": INSTANCE_MAIN,
        "messageId": str(uuid.uuid4()),
        "providerMessageId": "BAE5D1A2B3C4D5E6",
        "to": "+33612345678",
        "status": event.rsplit(".", 1)[-1],
        "timestamp": moment(),
        **fields,
    }


def moment(seconds_ago: float = 0) -> str:
    """A payload timestamp as MsgFlash writes it, ``seconds_ago`` before now."""
    return utc_millis(datetime.now(UTC) - timedelta(seconds=seconds_ago))


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


async def post(
    relay: Relay, body: bytes, signature: str | None, *, event: str = "message.delivered"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", "X-MsgFlash-Event": event}
    if signature is not None:
        headers["X-MsgFlash-Signature"] = signature
    url = f"http://127.0.0.1:{relay.http_port}/webhooks/msgflash"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=io.BytesIO(body), headers=headers) as response,
    ):
        return response.status, await response.json()


async def deliver(relay: Relay, payload: dict[str, Any], secret: str = SECRET) -> int:
    body = encode(payload)
    status, _ = await post(relay, body, sign(secret, body))
    return status


def about(message_id: str) -> Any:
    def matches(event: dict[str, Any]) -> bool:
        payload = event.get("data", {}).get("payload", {})
        nested = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        return message_id in (payload.get("messageId"), nested.get("messageId"))

    return matches


def webhook_events(events: EventTap) -> list[dict[str, Any]]:
    return [e for e in events.events if str(e.get("type", "")).startswith(WEBHOOK_TYPE)]


async def sentinel(relay: Relay, events: EventTap) -> None:
    """Deliver one good webhook and wait for it: everything published before it has arrived."""
    payload = delivery("message.sent")
    assert await deliver(relay, payload) == 200
    await events.wait_for(about(payload["messageId"]))


# --- accepted and republished -------------------------------------------------------------
async def test_a_signed_delivery_is_republished_unchanged_as_a_webhook_event(
    relay: Relay, events: EventTap
) -> None:
    payload = delivery("message.delivered")
    body = encode(payload)

    status, answer = await post(relay, body, sign(SECRET, body))

    assert status == 200
    assert answer["status"] == "accepted"
    [event] = await events.wait_for(about(payload["messageId"]))
    assert event["type"] == "msgflash.webhook.message.delivered"
    assert event["id"] == answer["eventId"]
    assert event["source"] == "msgflash-relay"
    assert event["data"]["payload"] == payload
    assert "requestId" not in event["data"]  # a message this relay never sent
    [message] = [m for m in events.messages if m.message_id == event["id"]]
    assert message.routing_key == "webhook.message.delivered"


async def test_the_nested_payload_shape_is_accepted_too(relay: Relay, events: EventTap) -> None:
    message_id = str(uuid.uuid4())
    data = {"messageId": message_id, "status": "read", "timestamp": moment()}
    payload = {"event": "message.read", "data": data}

    assert await deliver(relay, payload) == 200

    [event] = await events.wait_for(about(message_id))
    assert event["type"] == "msgflash.webhook.message.read"
    assert event["data"]["payload"] == payload


async def test_old_and_new_secrets_are_both_accepted_during_a_rotation(
    relay_factory: RelayFactory, events: EventTap
) -> None:
    relay = await relay_factory(msgflash_webhook_secret=f"{OLD_SECRET}, {SECRET}")
    signed_old, signed_new = delivery("message.sent"), delivery("message.read")

    assert await deliver(relay, signed_old, OLD_SECRET) == 200
    assert await deliver(relay, signed_new, SECRET) == 200

    await events.wait_for(about(signed_old["messageId"]))
    await events.wait_for(about(signed_new["messageId"]))


async def test_a_secret_added_at_run_time_is_accepted(relay: Relay, events: EventTap) -> None:
    payload = delivery()
    assert await deliver(relay, payload, "whsec-registered-later") == 401

    relay.add_webhook_secret("whsec-registered-later")

    assert await deliver(relay, payload, "whsec-registered-later") == 200
    await events.wait_for(about(payload["messageId"]))


# --- refused ------------------------------------------------------------------------------
def _wrong_secret(body: bytes) -> tuple[bytes, str | None]:
    return body, sign("not-the-secret", body)


def _missing(body: bytes) -> tuple[bytes, str | None]:
    return body, None


def _tampered(body: bytes) -> tuple[bytes, str | None]:
    return body.replace(b"delivered", b"read"), sign(SECRET, body)


def _prefixless(body: bytes) -> tuple[bytes, str | None]:
    return body, sign(SECRET, body).removeprefix("sha256=")


def _uppercase_prefix(body: bytes) -> tuple[bytes, str | None]:
    return body, "SHA256=" + sign(SECRET, body).removeprefix("sha256=")


def _empty(body: bytes) -> tuple[bytes, str | None]:
    return body, ""


@pytest.mark.parametrize(
    "forge",
    [_wrong_secret, _missing, _tampered, _prefixless, _uppercase_prefix, _empty],
    ids=["wrong-secret", "missing", "tampered-body", "prefixless", "uppercase-prefix", "empty"],
)
async def test_an_unverifiable_delivery_is_refused_with_401_and_not_published(
    relay: Relay, events: EventTap, forge: Any
) -> None:
    payload = delivery("message.delivered")
    body, signature = forge(encode(payload))

    status, answer = await post(relay, body, signature)

    assert status == 401
    assert answer["error"]["code"] == "INVALID_SIGNATURE"
    await sentinel(relay, events)
    assert not [e for e in events.events if about(payload["messageId"])(e)]


async def test_every_refusal_reads_the_same_so_a_forger_learns_nothing(relay: Relay) -> None:
    body = encode(delivery())
    answers = [
        await post(relay, *_wrong_secret(body)),
        await post(relay, *_missing(body)),
        await post(relay, *_prefixless(body)),
    ]
    assert len({json.dumps(answer, sort_keys=True) for answer in answers}) == 1
    assert SECRET not in json.dumps(answers)


async def test_without_any_secret_every_delivery_is_refused_and_the_operator_told(
    relay_factory: RelayFactory,
) -> None:
    relay = await relay_factory()  # MSGFLASH_WEBHOOK_SECRET unset
    body = encode(delivery())

    with structlog.testing.capture_logs() as logs:
        status, _ = await post(relay, body, sign("", body))

    assert status == 401
    [entry] = [e for e in logs if e["event"] == "webhook_secret_missing"]
    assert entry["log_level"] == "error"
    assert "MSGFLASH_WEBHOOK_SECRET" in entry["hint"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b""])
async def test_a_signed_body_that_is_not_a_json_object_is_400(relay: Relay, body: bytes) -> None:
    status, answer = await post(relay, body, sign(SECRET, body))

    assert status == 400
    assert answer["error"]["code"] == "INVALID_JSON"


async def test_a_delivery_over_one_mebibyte_is_413_and_one_of_exactly_that_size_is_taken(
    relay: Relay, events: EventTap
) -> None:
    limit = 1024 * 1024
    payload = delivery(padding="")
    payload["padding"] = "x" * (limit - len(encode(payload)))
    exact = encode(payload)
    over = exact[:-2] + b'x"}'
    assert (len(exact), len(over)) == (limit, limit + 1)

    status_over, answer = await post(relay, over, sign(SECRET, over))
    status_exact, _ = await post(relay, exact, sign(SECRET, exact))

    assert status_over == 413
    assert answer["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert status_exact == 200
    await events.wait_for(about(payload["messageId"]))


@pytest.mark.parametrize("name", ["__main__", "message.#", "message." + "x" * 240, 42])
async def test_an_undocumented_event_name_is_published_as_webhook_unknown_with_the_name(
    relay: Relay, events: EventTap, name: Any
) -> None:
    payload = {**delivery("message.delivered"), "event": name}

    assert await deliver(relay, payload) == 200

    [event] = await events.wait_for(about(payload["messageId"]))
    assert event["type"] == "msgflash.webhook.unknown"
    assert events.messages[events.events.index(event)].routing_key == "webhook.unknown"
    assert event["data"]["payload"] == payload
    assert event["data"]["event"] == str(name)
    assert ("unknown", "accepted") in await webhook_counts(relay)
    assert not [key for key in await webhook_counts(relay) if key[0] not in KNOWN_LABELS]


KNOWN_LABELS = {"unknown", "message.delivered", "message.sent"}


# --- replays ------------------------------------------------------------------------------
async def test_an_undated_delivery_is_published_once_and_its_repeat_is_deduplicated(
    relay: Relay, events: EventTap
) -> None:
    """MsgFlash's nested payload shape carries no timestamp: refusing it would lose it."""
    payload = {"event": "message.delivered", "data": {"messageId": str(uuid.uuid4())}}
    body = encode(payload)

    assert (await post(relay, body, sign(SECRET, body)))[0] == 200
    assert (await post(relay, body, sign(SECRET, body)))[0] == 200

    await sentinel(relay, events)
    assert len([e for e in events.events if about(payload["data"]["messageId"])(e)]) == 1


async def test_with_a_timestamp_required_an_undated_delivery_is_refused_and_not_published(
    relay_factory: RelayFactory, events: EventTap
) -> None:
    relay = await relay_factory(msgflash_webhook_secret=SECRET, relay_webhook_require_timestamp="1")
    payload = {"event": "message.delivered", "data": {"messageId": str(uuid.uuid4())}}
    body = encode(payload)

    status, answer = await post(relay, body, sign(SECRET, body))

    assert (status, answer["error"]["code"]) == (400, "INVALID_PAYLOAD")
    assert "RELAY_WEBHOOK_REQUIRE_TIMESTAMP" in answer["error"]["message"]
    await sentinel(relay, events)
    assert not [e for e in events.events if about(payload["data"]["messageId"])(e)]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2020-01-01T00:00:00.000Z",
        moment(6 * 3600 + 60),
        moment(-3600),
        "yesterday",
        1700000000,
    ],
)
async def test_a_signed_delivery_replayed_after_the_tolerance_is_refused_and_not_published(
    relay: Relay, events: EventTap, timestamp: Any
) -> None:
    payload = delivery("message.delivered", timestamp=timestamp)
    body = encode(payload)

    status, answer = await post(relay, body, sign(SECRET, body))

    assert status == 400
    assert answer["error"]["code"] in ("STALE_DELIVERY", "INVALID_PAYLOAD")
    assert "timestamp" in answer["error"]["message"]
    await sentinel(relay, events)
    assert not [e for e in events.events if about(payload["messageId"])(e)]


async def test_the_tolerance_is_a_setting_and_a_delivery_within_it_is_taken(
    relay_factory: RelayFactory, events: EventTap
) -> None:
    relay = await relay_factory(msgflash_webhook_secret=SECRET, relay_webhook_tolerance_seconds=60)
    fresh = delivery("message.delivered", timestamp=moment(30))
    stale = delivery("message.delivered", timestamp=moment(90))

    assert await deliver(relay, fresh) == 200
    assert await deliver(relay, stale) == 400
    await events.wait_for(about(fresh["messageId"]))


async def test_a_replay_within_the_tolerance_is_a_duplicate_even_with_a_short_dedupe_window(
    relay_factory: RelayFactory, events: EventTap
) -> None:
    relay = await relay_factory(msgflash_webhook_secret=SECRET, relay_webhook_dedupe_seconds=0)
    payload = delivery("message.delivered")
    body = encode(payload)

    first, _ = await post(relay, body, sign(SECRET, body))
    replayed, answer = await post(relay, body, sign(SECRET, body))

    assert (first, replayed, answer["status"]) == (200, 200, "duplicate")
    await sentinel(relay, events)
    assert len([e for e in events.events if about(payload["messageId"])(e)]) == 1


# --- once only ----------------------------------------------------------------------------
async def test_repeated_deliveries_are_published_once(relay: Relay, events: EventTap) -> None:
    payload = delivery("message.delivered")
    body = encode(payload)

    answers = [await post(relay, body, sign(SECRET, body)) for _ in range(3)]

    assert [status for status, _ in answers] == [200, 200, 200]
    assert [answer["status"] for _, answer in answers] == ["accepted", "duplicate", "duplicate"]
    await sentinel(relay, events)
    assert len([e for e in events.events if about(payload["messageId"])(e)]) == 1


async def test_a_new_status_of_the_same_message_is_a_new_event(
    relay: Relay, events: EventTap
) -> None:
    delivered = delivery("message.delivered")
    read = {**delivered, "event": "message.read", "status": "read"}

    assert await deliver(relay, delivered) == 200
    assert await deliver(relay, read) == 200

    found = await events.wait_for(about(delivered["messageId"]), count=2)
    assert {e["type"] for e in found} == {
        "msgflash.webhook.message.delivered",
        "msgflash.webhook.message.read",
    }


async def test_deliveries_without_a_message_id_are_deduplicated_by_their_body(
    relay: Relay, events: EventTap
) -> None:
    instance = str(uuid.uuid4())
    connected = {
        "event": "instance.connected",
        "instanceId": instance,
        "status": "connected",
        "timestamp": moment(60),
    }
    later = {**connected, "timestamp": moment()}

    statuses = [await deliver(relay, p) for p in (connected, connected, later)]

    assert statuses == [200, 200, 200]
    await sentinel(relay, events)
    mine = [e for e in events.events if e["data"].get("payload", {}).get("instanceId") == instance]
    assert [e["data"]["payload"] for e in mine] == [connected, later]


# --- broker trouble -----------------------------------------------------------------------
async def test_when_the_broker_cannot_confirm_it_is_503_and_the_retry_goes_through(
    relay: Relay, events: EventTap
) -> None:
    """ "Broker down" for this relay only: its publisher is detached from the connection, the
    state the runtime puts it in when the broker connection is lost, so every publish raises
    BrokerUnavailable. Re-attaching it to the live connection is what a reconnect does. The
    shared broker other tests use is never touched."""
    payload = delivery("message.delivered")
    body = encode(payload)
    relay.publisher.detach()

    status, answer = await post(relay, body, sign(SECRET, body))

    assert status == 503
    assert answer["error"]["code"] == "BROKER_UNAVAILABLE"
    connection = relay.broker.connection
    assert connection is not None
    await relay.publisher.attach(connection)
    status, answer = await post(relay, body, sign(SECRET, body))  # MsgFlash's retry
    assert (status, answer["status"]) == (200, "accepted")
    [event] = await events.wait_for(about(payload["messageId"]))
    assert event["id"] == answer["eventId"]


# --- correlation --------------------------------------------------------------------------
async def test_a_delivery_status_carries_the_request_id_of_the_command_that_sent_it(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    url = f"http://127.0.0.1:{relay.http_port}/webhooks/msgflash"
    status, created = await sandbox.api(
        "POST", "/api/v1/webhooks", {"url": url, "events": ["message.delivered"]}
    )
    assert status == 201, created
    relay.add_webhook_secret(created["data"]["secret"])
    cmd = command(source="orders-service")

    await producer.publish(cmd)

    [sent] = await events.wait_for(
        lambda e: e["type"] == "msgflash.message.sent" and e["data"]["requestId"] == cmd["id"]
    )
    [delivered] = await events.wait_for(
        lambda e: (
            e["type"] == "msgflash.webhook.message.delivered"
            and e["data"]["payload"]["messageId"] == sent["data"]["messageId"]
        )
    )
    assert delivered["data"]["requestId"] == cmd["id"]
    assert delivered["data"]["requestSource"] == "orders-service"


# --- metrics ------------------------------------------------------------------------------
async def test_each_delivery_is_counted_by_event_and_result(relay: Relay, events: EventTap) -> None:
    payload = delivery("message.delivered")
    body = encode(payload)
    await post(relay, body, sign(SECRET, body))
    await post(relay, body, sign(SECRET, body))
    await post(relay, body, sign("wrong", body))
    await post(relay, b"[]", sign(SECRET, b"[]"))

    counts = await webhook_counts(relay)

    assert counts[("message.delivered", "accepted")] == 1
    assert counts[("message.delivered", "duplicate")] == 1
    assert counts[("unknown", "bad_signature")] == 1
    assert counts[("unknown", "bad_json")] == 1


async def webhook_counts(relay: Relay) -> dict[tuple[str, str], float]:
    url = f"http://127.0.0.1:{relay.admin_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    return {
        (sample.labels["event"], sample.labels["result"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "relay_webhooks"
        for sample in family.samples
        if sample.name == "relay_webhooks_total"
    }
