"""Scheduling, the queued -> sent -> delivered -> read lifecycle, and reading messages back
(§6.4 - §6.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.providers.msgflash.sandbox.seed import (
    INSTANCE_CONNECTING,
    INSTANCE_MAIN,
    INSTANCE_OFFLINE,
    INSTANCE_WARMING,
)
from tests.providers.msgflash.sandbox.conftest import Api, eventually

TO = "+33612345678"


def _text(instance: str = INSTANCE_MAIN, **fields: Any) -> dict[str, Any]:
    return {"instanceId": instance, "to": TO, "type": "text", "text": "Hello", **fields}


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def _send(api: Api, path: str = "/api/v1/messages/send", **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = await api.ok("POST", path, _text(**fields))
    return message


async def _reaches(api: Api, message_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        message: dict[str, Any] = await api.ok("GET", f"/api/v1/messages/{message_id}")
        return message

    found: dict[str, Any] = await eventually(probe, lambda m: m["status"] == status)
    return found


async def test_a_sent_message_moves_from_queued_to_read(api: Api) -> None:
    sent = await _send(api)
    assert sent["status"] == "queued" and sent["providerMessageId"] is None
    read = await _reaches(api, sent["id"], "read")
    assert read["providerMessageId"].startswith("BAE5")
    assert read["meta"]["workerSafety"]["decision"] == "allow"


@pytest.mark.parametrize("instance", [INSTANCE_OFFLINE, INSTANCE_CONNECTING])
async def test_an_instance_that_is_not_connected_fails_the_message(api: Api, instance: str) -> None:
    sent = await _send(api, instance=instance)
    failed = await _reaches(api, sent["id"], "failed")
    assert "not connected" in failed["error"]


async def test_a_disconnection_before_processing_fails_a_scheduled_message(api: Api) -> None:
    scheduled = await _send(api, "/api/v1/messages/schedule", scheduledAt=_at(0.3))
    await api.ok("PATCH", f"/_sandbox/instances/{INSTANCE_MAIN}", {"status": "disconnected"})
    await _reaches(api, scheduled["id"], "failed")


async def test_schedule_requires_scheduled_at(api: Api) -> None:
    status, body = await api.post("/api/v1/messages/schedule", _text())
    assert status == 400
    assert [d["field"] for d in body["error"]["details"]] == ["scheduledAt"]


@pytest.mark.parametrize("when", ["tomorrow", "2026-12-01T08:00:00", "2026-12-01"])
async def test_scheduled_at_must_be_an_iso_instant_with_an_offset(api: Api, when: str) -> None:
    status, body = await api.post("/api/v1/messages/schedule", _text(scheduledAt=when))
    assert status == 400
    assert [d["field"] for d in body["error"]["details"]] == ["scheduledAt"]


async def test_a_past_scheduled_at_is_sent_right_away(api: Api) -> None:
    scheduled = await _send(api, "/api/v1/messages/schedule", scheduledAt="2020-01-01T00:00:00Z")
    assert scheduled["status"] == "queued" and scheduled["safety"]["decision"] == "allow"
    await _reaches(api, scheduled["id"], "read")


async def test_a_future_message_stays_queued_while_others_are_sent(api: Api) -> None:
    later = await _send(api, "/api/v1/messages/schedule", scheduledAt=_at(3600))
    now = await _send(api)
    await _reaches(api, now["id"], "read")
    assert (await api.ok("GET", f"/api/v1/messages/{later['id']}"))["status"] == "queued"


async def test_a_scheduled_message_is_sent_at_its_time(api: Api) -> None:
    scheduled = await _send(api, "/api/v1/messages/schedule", scheduledAt=_at(0.2))
    await _reaches(api, scheduled["id"], "read")


async def test_schedule_answers_the_full_message_with_safety(api: Api) -> None:
    scheduled = await _send(
        api, "/api/v1/messages/schedule", instance=INSTANCE_WARMING, scheduledAt=_at(60)
    )
    assert scheduled["direction"] == "outbound" and scheduled["from"] is None
    assert scheduled["safety"]["decision"] == "warn" and scheduled["warnings"]


async def test_an_unknown_message_is_not_found(api: Api) -> None:
    status, body = await api.get("/api/v1/messages/00000000-0000-4000-8000-00000000ffff")
    assert status == 404
    assert body["error"] == {"code": "NOT_FOUND", "message": "Message not found"}


async def test_the_list_pages_newest_first_with_a_cursor(api: Api) -> None:
    ids = [(await _send(api, text=f"n{n}"))["id"] for n in range(5)]
    first = await api.ok("GET", "/api/v1/messages?limit=2")
    assert [m["id"] for m in first["messages"]] == ids[:-3:-1]
    assert first["hasMore"] is True
    seen = [m["id"] for m in first["messages"]]
    cursor = first["nextCursor"]
    while cursor:
        page = await api.ok("GET", f"/api/v1/messages?limit=2&cursor={cursor}")
        seen += [m["id"] for m in page["messages"]]
        cursor = page["nextCursor"]
    assert seen == ids[::-1]
    assert page["hasMore"] is False


async def test_the_list_filters_by_instance_and_status(api: Api) -> None:
    main = await _send(api)
    await _send(api, instance=INSTANCE_WARMING)
    failed = await _send(api, instance=INSTANCE_OFFLINE)
    await _reaches(api, failed["id"], "failed")
    by_instance = await api.ok("GET", f"/api/v1/messages?instanceId={INSTANCE_MAIN}")
    assert [m["id"] for m in by_instance["messages"]] == [main["id"]]
    by_status = await api.ok("GET", "/api/v1/messages?status=failed")
    assert [m["id"] for m in by_status["messages"]] == [failed["id"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"),
     ("cursor=bm9wZQ", "cursor"), ("status=lost", "status")],
)  # fmt: skip
async def test_bad_list_parameters_are_validation_errors(api: Api, query: str, field: str) -> None:
    status, body = await api.get(f"/api/v1/messages?{query}")
    assert status == 400
    assert [d["field"] for d in body["error"]["details"]] == [field]
