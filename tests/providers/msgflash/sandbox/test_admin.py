"""The ``/_sandbox`` control surface: request log, reset, instances, usage."""

from __future__ import annotations

import pytest

from service.providers.msgflash.sandbox.seed import CONTACT_ANA, INSTANCE_MAIN, TEMPLATE_WELCOME
from tests.providers.msgflash.sandbox.conftest import Api, ApiFactory

SEND = "/api/v1/messages/send"
TEXT = {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "type": "text", "text": "Hi"}


async def test_the_log_records_every_api_request_including_rejected_ones(
    make_api: ApiFactory,
) -> None:
    api = await make_api(rate_limit_per_second=1.0)
    await api.post(SEND, TEXT)
    await api.post(SEND, TEXT)  # over the 1/s limit
    await api.client.get("/api/v1/instances?x=1")  # no key
    log = await api.ok("GET", "/_sandbox/requests")
    assert [(e["method"], e["path"], e["status"], e["code"]) for e in log] == [
        ("POST", SEND, 201, None),
        ("POST", SEND, 429, "API_RATE_LIMIT_EXCEEDED"),
        ("GET", "/api/v1/instances", 401, "UNAUTHORIZED"),
    ]
    first, _, last = log
    assert first["body"] == TEXT and first["key"] == api.key[-6:]
    assert last["key"] is None and last["query"] == {"x": "1"}
    assert [e["seq"] for e in log] == [1, 2, 3] and isinstance(first["at"], float)


async def test_the_log_records_the_trace_context_headers_and_no_other(api: Api) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = {"traceparent": traceparent, "tracestate": "relay=1", "X-Other": "not kept"}
    await api.call("POST", SEND, TEXT, headers=headers)
    await api.post(SEND, TEXT)
    traced, untraced = await api.ok("GET", "/_sandbox/requests")
    assert traced["headers"] == {"traceparent": traceparent, "tracestate": "relay=1"}
    assert untraced["headers"] == {}


async def test_the_log_filters_by_path_prefix_and_method(api: Api) -> None:
    await api.post(SEND, TEXT)
    await api.get("/api/v1/messages")
    await api.get("/api/v1/instances")
    by_path = await api.ok("GET", "/_sandbox/requests?path=/api/v1/messages")
    assert [e["path"] for e in by_path] == [SEND, "/api/v1/messages"]
    by_method = await api.ok("GET", "/_sandbox/requests?path=/api/v1/messages&method=get")
    assert [e["path"] for e in by_method] == ["/api/v1/messages"]


async def test_the_log_keeps_only_the_newest_entries(make_api: ApiFactory) -> None:
    api = await make_api(request_log_limit=2)
    for _ in range(3):
        await api.get("/api/v1/instances")
    assert [e["seq"] for e in await api.ok("GET", "/_sandbox/requests")] == [2, 3]


async def test_the_log_can_be_cleared(api: Api) -> None:
    await api.get("/api/v1/instances")
    await api.ok("DELETE", "/_sandbox/requests")
    assert await api.ok("GET", "/_sandbox/requests") == []


async def test_reset_returns_everything_to_the_seed(api: Api) -> None:
    await api.post(SEND, TEXT)
    await api.ok("DELETE", f"/api/v1/templates/{TEMPLATE_WELCOME}")
    await api.ok("PUT", f"/api/v1/contacts/{CONTACT_ANA}", {"name": "Changed"})
    await api.ok(
        "POST", "/api/v1/webhooks", {"url": "https://h.example.com", "events": ["message.sent"]}
    )
    await api.ok("PUT", "/_sandbox/plan", {"plan": "free"})
    await api.ok("PUT", "/_sandbox/limits", {"monthlyOutboundQuota": 0})
    await api.ok("PUT", "/_sandbox/faults", {"latency_ms": 1})
    assert await api.ok("POST", "/_sandbox/reset") == {"reset": True}
    assert await api.ok("GET", "/_sandbox/requests") == []
    assert (await api.ok("GET", "/_sandbox/faults"))["active"] is False
    usage = await api.ok("GET", "/_sandbox/usage")
    assert usage["plan"]["code"] == "max" and usage["usage"]["messagesCount"] == 0
    assert usage["limits"]["monthlyOutboundQuota"] == 150_000
    assert (await api.ok("GET", "/api/v1/messages"))["messages"] == []
    assert (await api.ok("GET", f"/api/v1/templates/{TEMPLATE_WELCOME}"))["name"] == "welcome"
    assert (await api.ok("GET", f"/api/v1/contacts/{CONTACT_ANA}"))["name"] == "Ana Lima"
    assert await api.ok("GET", "/api/v1/webhooks") == []


async def test_an_instance_can_be_added_and_replaced(api: Api) -> None:
    twin = {"name": "main", "waNumber": "+2250700000099", "status": "connected",
            "business": False, "safetyState": "new"}  # fmt: skip
    added = await api.ok("POST", "/_sandbox/instances", twin)
    assert added["name"] == "main" and added["id"] != INSTANCE_MAIN
    names = [i["name"] for i in await api.ok("GET", "/api/v1/instances")]
    assert names.count("main") == 2
    replaced = await api.ok("POST", "/_sandbox/instances", {**twin, "id": added["id"], "name": "b"})
    assert replaced["id"] == added["id"] and replaced["name"] == "b"
    health = await api.ok("GET", f"/api/v1/instances/{added['id']}/health")
    assert health["safetyState"] == "new"


async def test_an_instance_can_be_changed(api: Api) -> None:
    changed = await api.ok(
        "PATCH",
        f"/_sandbox/instances/{INSTANCE_MAIN}",
        {"status": "disconnected", "safetyState": "warming"},
    )
    assert changed["status"] == "disconnected"
    health = await api.ok("GET", f"/api/v1/instances/{INSTANCE_MAIN}/health")
    assert (health["safetyState"], health["safetyScore"]) == ("warming", 56)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PATCH", "/_sandbox/instances/00000000-0000-4000-8000-00000000ffff", {}, 404),
        ("PATCH", f"/_sandbox/instances/{INSTANCE_MAIN}", {"status": "asleep"}, 400),
        ("POST", "/_sandbox/instances", {"waNumber": "+1"}, 400),
        ("PUT", "/_sandbox/usage", {"messagesCount": -1}, 400),
        ("PUT", "/_sandbox/limits", {"monthlyQuota": 3}, 400),
    ],
)
async def test_admin_bodies_are_validated(
    api: Api, method: str, path: str, body: dict[str, object], status: int
) -> None:
    assert (await api.call(method, path, body))[0] == status


async def test_usage_can_be_set_and_read(api: Api) -> None:
    set_to = await api.ok("PUT", "/_sandbox/usage", {"messagesCount": 7, "apiRequestsCount": 9})
    assert set_to["usage"]["messagesCount"] == 7 and set_to["usage"]["effectiveOutboundUsage"] == 7
    await api.get("/api/v1/instances")
    assert (await api.ok("GET", "/_sandbox/usage"))["usage"]["apiRequestsCount"] == 10
