"""``/api/v1/webhooks`` (§11): registration, and real signed deliveries with retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from typing import Any

import pytest

from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN, INSTANCE_OFFLINE
from tests.providers.msgflash.sandbox.conftest import Api, ApiFactory, Receiver, eventually

HOOKS = "/api/v1/webhooks"
MESSAGE_EVENTS = ["message.sent", "message.delivered", "message.read", "message.failed"]


async def _register(api: Api, url: str, events: list[str] = MESSAGE_EVENTS) -> dict[str, Any]:
    hook: dict[str, Any] = await api.ok("POST", HOOKS, {"url": url, "events": events})
    return hook


async def _send(api: Api, instance: str = INSTANCE_MAIN) -> dict[str, Any]:
    body = {"instanceId": instance, "to": "+33612345678", "type": "text", "text": "Hi"}
    message: dict[str, Any] = await api.ok("POST", "/api/v1/messages/send", body)
    return message


def _verified(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    """The receiver's check, written from the fact sheet independently of the sandbox."""
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-MsgFlash-Signature"], expected)


async def test_the_secret_is_shown_once(api: Api) -> None:
    hook = await _register(api, "https://hooks.example.com/msgflash")
    assert len(hook["secret"]) >= 32 and hook["active"] is True
    listed = await api.ok("GET", HOOKS)
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0] and "updatedAt" in listed[0]
    assert await api.ok("DELETE", f"{HOOKS}/{hook['id']}") == {"deleted": True}
    assert (await api.delete(f"{HOOKS}/{hook['id']}"))[0] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://hooks.example.com/x", "events": ["message.sent"]}, "url"),
        ({"url": "hooks.example.com", "events": ["message.sent"]}, "url"),
        ({"url": "https://h.example.com", "events": []}, "events"),
        ({"url": "https://h.example.com", "events": ["message.sent"] * 51}, "events"),
        ({"url": "https://h.example.com", "events": ["message.opened"]}, "events[0]"),
    ],
)
async def test_registrations_are_validated(api: Api, body: dict[str, Any], field: str) -> None:
    status, answer = await api.post(HOOKS, body)
    assert status == 400 and [d["field"] for d in answer["error"]["details"]] == [field]


async def test_plain_http_to_loopback_can_be_switched_off(make_api: ApiFactory) -> None:
    api = await make_api(allow_http_webhooks=False)
    status, _ = await api.post(HOOKS, {"url": "http://127.0.0.1:9/x", "events": ["message.sent"]})
    assert status == 400


async def test_webhooks_are_gated_and_bounded_by_the_plan(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/limits", {"maxWebhookEndpoints": 1})
    await _register(api, "https://a.example.com")
    status, body = await api.post(
        HOOKS, {"url": "https://b.example.com", "events": ["message.sent"]}
    )
    assert (status, body["error"]["code"]) == (403, "MAX_WEBHOOK_ENDPOINTS_REACHED")
    await api.ok("PUT", "/_sandbox/features", {"webhooks": False})
    status, body = await api.post(
        HOOKS, {"url": "https://c.example.com", "events": ["message.sent"]}
    )
    assert (status, body["error"]["code"]) == (403, "WEBHOOKS_NOT_AVAILABLE_ON_PLAN")


async def test_each_transition_is_delivered_signed_in_the_flat_shape(
    api: Api, receiver: Receiver
) -> None:
    hook = await _register(api, receiver.url)
    message = await _send(api)
    received = await receiver.wait_for(3)
    payloads = [json.loads(raw) for _, raw in received]
    assert sorted(p["status"] for p in payloads) == ["delivered", "read", "sent"]
    for (headers, raw), payload in zip(received, payloads, strict=True):
        assert _verified(hook["secret"], headers, raw)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-MsgFlash-Event"] == payload["event"] == f"message.{payload['status']}"
        assert set(payload) == {
            "event", "instanceId", "messageId", "providerMessageId", "to", "status", "timestamp",
        }  # fmt: skip
        assert (payload["messageId"], payload["instanceId"]) == (message["id"], INSTANCE_MAIN)
        assert payload["providerMessageId"].startswith("BAE5")


async def test_a_failed_message_is_delivered_with_its_error(api: Api, receiver: Receiver) -> None:
    await _register(api, receiver.url, ["message.failed"])
    await _send(api, INSTANCE_OFFLINE)
    [(_, raw)] = await receiver.wait_for(1)
    payload = json.loads(raw)
    assert payload["event"] == "message.failed" and "not connected" in payload["error"]


async def test_only_subscribed_events_are_delivered(api: Api, receiver: Receiver) -> None:
    await _register(api, receiver.url, ["message.read"])
    message = await _send(api)
    [(_, raw)] = await receiver.wait_for(1)
    assert json.loads(raw)["status"] == "read"
    other = await _send(api)
    await receiver.wait_for(2)
    assert [json.loads(raw)["messageId"] for _, raw in receiver.received] == [
        message["id"],
        other["id"],
    ]


async def test_a_non_2xx_answer_is_retried_until_accepted(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    await _register(api, receiver.url, ["message.sent"])
    await _send(api)
    received = await receiver.wait_for(3)
    assert len({raw for _, raw in received}) == 1  # the same body, re-sent
    deliveries = await api.ok("GET", "/_sandbox/webhook-deliveries")
    assert [(d["attempt"], d["status"], d["delivered"]) for d in deliveries] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]


async def test_a_connection_error_is_retried_five_times_in_all(api: Api) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await _register(api, f"http://127.0.0.1:{port}/hook", ["message.sent"])
    await _send(api)
    deliveries = await eventually(
        lambda: api.ok("GET", "/_sandbox/webhook-deliveries"), lambda found: len(found) >= 5
    )
    assert [d["attempt"] for d in deliveries] == [1, 2, 3, 4, 5]
    assert all(d["status"] is None and d["error"] for d in deliveries)


async def test_an_instance_status_change_is_delivered(api: Api, receiver: Receiver) -> None:
    await _register(api, receiver.url, ["instance.disconnected"])
    await api.ok("PATCH", f"/_sandbox/instances/{INSTANCE_MAIN}", {"status": "disconnected"})
    [(_, raw)] = await receiver.wait_for(1)
    payload = json.loads(raw)
    assert (payload["event"], payload["instanceId"]) == ("instance.disconnected", INSTANCE_MAIN)
