"""Commands name their account (contract §7): routing by the ``account`` attribute, in both
CloudEvents modes, against the real broker and sandbox."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aio_pika.abc import AbstractConnection

from service.contract.amqp import Topology
from tests.conftest import EventTap, Producer, SandboxHandle, dead_letters, text_command

pytestmark = pytest.mark.usefixtures("relay")


def _result(events: EventTap, request_id: str) -> Any:
    return events.wait_for(
        lambda e: (
            e.get("data", {}).get("requestId") == request_id
            and e["type"] in ("msgflash.message.sent", "msgflash.message.failed")
        )
    )


async def test_a_command_without_account_is_sent_for_default_and_its_events_say_so(
    producer: Producer, events: EventTap
) -> None:
    body = text_command("no account named")
    await producer.publish(body)
    (result,) = await _result(events, body["id"])
    assert result["type"] == "msgflash.message.sent"
    assert result["account"] == "default"


async def test_a_structured_command_naming_default_is_sent(
    producer: Producer, events: EventTap
) -> None:
    body = {**text_command("default named"), "account": "default"}
    await producer.publish(body)
    (result,) = await _result(events, body["id"])
    assert (result["type"], result["account"]) == ("msgflash.message.sent", "default")


async def test_an_unknown_account_fails_is_dead_lettered_and_nothing_is_called(
    producer: Producer,
    events: EventTap,
    sandbox: SandboxHandle,
    amqp: AbstractConnection,
    declared: Topology,
) -> None:
    body = {**text_command("for nobody"), "account": "nobody"}
    await producer.publish(body)
    (result,) = await _result(events, body["id"])
    assert result["type"] == "msgflash.message.failed"
    assert result["data"]["error"]["code"] == "ACCOUNT_NOT_FOUND"
    assert "'nobody'" in result["data"]["error"]["message"]
    assert result["account"] == "nobody"
    (parked,) = await dead_letters(amqp, declared, expect=1)
    assert parked.headers["x-relay-error-code"] == "ACCOUNT_NOT_FOUND"
    assert json.loads(parked.body)["id"] == body["id"]
    sent = await sandbox.requests("/api/v1/messages", method="POST")
    assert not [r for r in sent if r["body"].get("text") == "for nobody"]


@pytest.mark.parametrize("header", ["cloudEvents_account", "cloudEvents:account", "ce-account"])
async def test_a_binary_command_names_its_account_in_a_header(
    producer: Producer, events: EventTap, header: str
) -> None:
    request_id = str(uuid.uuid4())
    data = text_command("binary")["data"]
    await producer.publish(
        json.dumps(data).encode(),
        "message.send",
        content_type="application/json",
        message_id=request_id,
        type="msgflash.message.send",
        app_id="tests",
        headers={header: "elsewhere"},
    )
    (result,) = await _result(events, request_id)
    assert result["data"]["error"]["code"] == "ACCOUNT_NOT_FOUND"
    assert result["account"] == "elsewhere"
