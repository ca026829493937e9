"""Commands name their account (contract §7): routing by the ``account`` attribute, in both
CloudEvents modes, against the real broker and sandbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractConnection

from service.contract.amqp import Topology
from service.contract.wire import utc_millis
from service.providers.msgflash.sandbox.delivery import sign
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN, INSTANCE_WARMING
from service.settings import DEFAULT_SANDBOX_API_KEY
from service.wiring.relay import Relay
from tests.conftest import (
    EventTap,
    Producer,
    RelayFactory,
    SandboxHandle,
    dead_letters,
    text_command,
)

v1_relay = pytest.mark.usefixtures("relay")


def _result(events: EventTap, request_id: str) -> Any:
    return events.wait_for(
        lambda e: (
            e.get("data", {}).get("requestId") == request_id
            and e["type"] in ("msgflash.message.sent", "msgflash.message.failed")
        )
    )


@v1_relay
async def test_a_command_without_account_is_sent_for_default_and_its_events_say_so(
    producer: Producer, events: EventTap
) -> None:
    body = text_command("no account named")
    await producer.publish(body)
    (result,) = await _result(events, body["id"])
    assert result["type"] == "msgflash.message.sent"
    assert result["account"] == "default"


@v1_relay
async def test_a_structured_command_naming_default_is_sent(
    producer: Producer, events: EventTap
) -> None:
    body = {**text_command("default named"), "account": "default"}
    await producer.publish(body)
    (result,) = await _result(events, body["id"])
    assert (result["type"], result["account"]) == ("msgflash.message.sent", "default")


@v1_relay
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


@v1_relay
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


# --- several accounts from the accounts file --------------------------------------------------
ACME_KEY = "msgf_live_" + "ac" * 32
ACCOUNTS_FILE = """
accounts:
  - name: acme
    provider: msgflash
    apiKeyEnv: MSGFLASH_KEY_ACME
    webhookSecretsEnv: MSGFLASH_WEBHOOK_SECRET_ACME
    defaultInstance: warming
"""
ACME_SECRET = "acme-webhook-secret"
DEFAULT_SECRET = "default-webhook-secret"


@pytest.fixture
def sandbox_config() -> dict[str, Any]:
    """The sandbox knows both keys, as MsgFlash would know both customers."""
    return {
        "api_keys": (DEFAULT_SANDBOX_API_KEY, ACME_KEY),
        "rate_limit_per_second": None,
        "lifecycle_step_seconds": 0.05,
        "webhook_retry_base_seconds": 0.05,
    }


@pytest.fixture
async def two_accounts(relay_factory: RelayFactory, tmp_path: Path) -> Relay:
    path = tmp_path / "accounts.yaml"
    path.write_text(ACCOUNTS_FILE)
    return await relay_factory(
        relay_accounts_file=str(path),
        msgflash_key_acme=ACME_KEY,
        msgflash_webhook_secret_acme=ACME_SECRET,
        msgflash_webhook_secret=DEFAULT_SECRET,
        relay_default_instance="main",
    )


async def test_each_account_calls_with_its_own_key_and_default_instance(
    two_accounts: Relay, producer: Producer, events: EventTap, sandbox: SandboxHandle
) -> None:
    to_acme = {**text_command("for acme"), "account": "acme"}
    to_default = text_command("for default")
    for body in (to_acme, to_default):
        del body["data"]["instanceId"]  # each account's default instance decides
        await producer.publish(body)
    acme_result = (await _result(events, to_acme["id"]))[0]
    default_result = (await _result(events, to_default["id"]))[0]
    assert (acme_result["account"], default_result["account"]) == ("acme", "default")
    assert acme_result["data"]["instanceId"] == INSTANCE_WARMING
    assert default_result["data"]["instanceId"] == INSTANCE_MAIN
    sends = await sandbox.requests("/api/v1/messages/send", method="POST")
    keys = {r["body"]["text"]: r["key"] for r in sends if r["status"] == 201}
    assert keys == {"for acme": ACME_KEY[-6:], "for default": DEFAULT_SANDBOX_API_KEY[-6:]}
    metrics = await _metrics(two_accounts)
    assert 'account="acme"' in metrics and ACME_KEY[-6:] not in metrics


async def _metrics(relay: Relay) -> str:
    url = f"http://127.0.0.1:{relay.admin_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


async def _webhook(relay: Relay, path: str, secret: str, message_id: str) -> int:
    body = json.dumps(
        {"event": "message.delivered", "messageId": message_id, "status": "delivered",
         "timestamp": utc_millis(datetime.now(UTC))}
    ).encode()  # fmt: skip
    headers = {"Content-Type": "application/json", "X-MsgFlash-Signature": sign(secret, body)}
    url = f"http://127.0.0.1:{relay.http_port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status


async def test_webhooks_are_verified_with_their_accounts_secrets_and_say_their_account(
    two_accounts: Relay, events: EventTap
) -> None:
    acme_id, default_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert await _webhook(two_accounts, "/webhooks/msgflash/acme", ACME_SECRET, acme_id) == 200
    assert await _webhook(two_accounts, "/webhooks/msgflash", ACME_SECRET, acme_id) == 401
    assert await _webhook(two_accounts, "/webhooks/msgflash/acme", DEFAULT_SECRET, acme_id) == 401
    assert await _webhook(two_accounts, "/webhooks/msgflash", DEFAULT_SECRET, default_id) == 200
    path = "/webhooks/msgflash/default"
    assert await _webhook(two_accounts, path, DEFAULT_SECRET, str(uuid.uuid4())) == 200
    assert await _webhook(two_accounts, "/webhooks/msgflash/nobody", ACME_SECRET, acme_id) == 404

    def about(message_id: str) -> Any:
        return lambda e: e.get("data", {}).get("payload", {}).get("messageId") == message_id

    (acme,) = await events.wait_for(about(acme_id))
    (default,) = await events.wait_for(about(default_id))
    assert (acme["account"], default["account"]) == ("acme", "default")
