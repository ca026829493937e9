"""The relay sends for two accounts (real RabbitMQ) to a sandbox with an account per key: each
account's message is seen only with its own key, and its webhooks come back on its own path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.settings import DEFAULT_SANDBOX_API_KEY
from service.wiring.relay import Relay
from tests.conftest import (
    RESULT_TYPES,
    SANDBOX_CONFIG,
    EventTap,
    Producer,
    RelayFactory,
    SandboxHandle,
    text_command,
)
from tests.integration.conftest import free_port

ACME_KEY = "msgf_live_" + "ac" * 32
ACCOUNTS_FILE = """
accounts:
  - name: acme
    provider: msgflash
    apiKeyEnv: MSGFLASH_KEY_ACME
"""


@pytest.fixture
def sandbox_config() -> dict[str, Any]:
    """The suite's sandbox, with the relay's two keys in two accounts."""
    accounts = [
        {"name": "default", "api_keys": [DEFAULT_SANDBOX_API_KEY]},
        {"name": "acme", "api_keys": [ACME_KEY]},
    ]
    return {**SANDBOX_CONFIG, "accounts": accounts}


async def _two_accounts(relay_factory: RelayFactory, tmp_path: Path, **env: Any) -> Relay:
    path = tmp_path / "accounts.yaml"
    path.write_text(ACCOUNTS_FILE)
    return await relay_factory(relay_accounts_file=str(path), msgflash_key_acme=ACME_KEY, **env)


async def _send_one_each(producer: Producer, events: EventTap) -> dict[str, str]:
    """The message id MsgFlash gave each account's command, by account."""
    commands = {"acme": {**text_command("for acme"), "account": "acme"}}
    commands["default"] = text_command("for default")
    for body in commands.values():
        await producer.publish(body)
    sent: dict[str, str] = {}
    for account, body in commands.items():
        (result,) = await events.wait_for(
            lambda e, i=body["id"]: e["data"].get("requestId") == i and e["type"] in RESULT_TYPES
        )
        assert (result["type"], result["account"]) == ("msgflash.message.sent", account), result
        sent[account] = result["data"]["messageId"]
    return sent


async def _status(url: str, key: str, message_id: str) -> int:
    headers = {"x-api-key": key}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/v1/messages/{message_id}", headers=headers) as response,
    ):
        return response.status


async def _assert_each_seen_by_its_own_key_only(url: str, sent: dict[str, str]) -> None:
    keys = {"default": DEFAULT_SANDBOX_API_KEY, "acme": ACME_KEY}
    seen = {
        (owner, reader): await _status(url, keys[reader], message_id)
        for owner, message_id in sent.items()
        for reader in keys
    }
    assert seen == {
        ("acme", "acme"): 200,
        ("acme", "default"): 404,
        ("default", "default"): 200,
        ("default", "acme"): 404,
    }


async def test_each_accounts_message_is_seen_only_with_its_own_key(
    relay_factory: RelayFactory,
    tmp_path: Path,
    producer: Producer,
    events: EventTap,
    sandbox: SandboxHandle,
) -> None:
    await _two_accounts(relay_factory, tmp_path)
    sent = await _send_one_each(producer, events)
    await _assert_each_seen_by_its_own_key_only(sandbox.url, sent)
    accounts = {
        r["body"]["text"]: r["account"] for r in await sandbox.requests("/api/v1/messages/send")
    }
    assert accounts == {"for acme": "acme", "for default": "default"}


async def test_the_embedded_sandbox_gives_each_relay_account_its_own_account_and_webhooks(
    relay_factory: RelayFactory, tmp_path: Path, producer: Producer, events: EventTap
) -> None:
    port = free_port()
    await _two_accounts(
        relay_factory,
        tmp_path,
        relay_sandbox=1,
        relay_sandbox_port=port,
        relay_tether_sandbox_port=free_port(),
    )
    sent = await _send_one_each(producer, events)
    await _assert_each_seen_by_its_own_key_only(f"http://127.0.0.1:{port}", sent)

    for account, message_id in sent.items():
        (delivered,) = await events.wait_for(
            lambda e, m=message_id: (
                e["type"] == "msgflash.webhook.message.delivered"
                and e["data"]["payload"]["messageId"] == m
            )
        )
        assert delivered["account"] == account
