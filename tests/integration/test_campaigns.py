"""campaign.create end to end: real RabbitMQ, the real sandbox, a real relay."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.contract.wire import utc_millis
from service.providers.msgflash.sandbox.seed import (
    CONTACT_ANA,
    CONTACT_BRUNO,
    GROUP_CUSTOMERS,
    INSTANCE_MAIN,
    INSTANCE_WARMING,
    TEMPLATE_WELCOME,
)
from service.tools.send import add_arguments, build_command, publish_and_wait
from service.wiring.relay import Relay
from tests.conftest import EventTap, Producer, SandboxHandle, command

CAMPAIGN = "msgflash.campaign.create"
# Computed, a month ahead: a schedule already past is refused on arrival.
START = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
SCHEDULE = START.isoformat()


def campaign(**data: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "instanceId": INSTANCE_MAIN,
        "name": "Launch",
        "schedule": SCHEDULE,
        "recipients": {"type": "all"},
        "message": {"type": "text", "text": "Hello all"},
    }
    return command(CAMPAIGN, {**base, **data})


async def created_payloads(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    records = await sandbox.requests("/api/v1/campaigns", method="POST")
    return [r["body"] for r in records]


@pytest.mark.parametrize(
    "recipients",
    [
        {"type": "all"},
        {"type": "tags", "value": ["vip", "fr"]},
        {"type": "explicit", "value": [CONTACT_ANA, CONTACT_BRUNO]},
        {"type": "group", "groupId": GROUP_CUSTOMERS},
    ],
    ids=lambda r: r["type"],
)
async def test_each_recipient_selector_creates_a_campaign(
    relay: Relay,
    events: EventTap,
    producer: Producer,
    sandbox: SandboxHandle,
    recipients: dict[str, Any],
) -> None:
    cmd = campaign(recipients=recipients)
    await producer.publish(cmd)

    (created,) = await events.wait_for(lambda e: e["type"] == "msgflash.campaign.created")
    data = created["data"]
    assert data["requestId"] == cmd["id"]
    assert data["campaignId"] and data["status"] == "scheduled"
    assert data["instanceId"] == INSTANCE_MAIN
    assert data["attempts"] == 1
    assert data["schedule"] == utc_millis(START)
    (payload,) = await created_payloads(sandbox)
    assert payload["recipients"] == recipients


async def test_direct_text_is_sent_as_body_and_captions_too(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await producer.publish(campaign())
    await producer.publish(
        campaign(
            name="Pictures",
            message={"type": "image", "mediaUrl": "https://example.com/p.png", "caption": "New!"},
        )
    )

    await events.wait_for(lambda e: e["type"] == "msgflash.campaign.created", count=2)
    by_name = {p["name"]: p for p in await created_payloads(sandbox)}
    assert by_name["Launch"]["type"] == "text"
    assert by_name["Launch"]["body"] == "Hello all"
    assert "text" not in by_name["Launch"]
    assert by_name["Pictures"]["body"] == "New!"
    assert by_name["Pictures"]["mediaUrl"] == "https://example.com/p.png"
    assert by_name["Launch"]["schedule"] == utc_millis(START)


async def test_template_mode_sends_global_variables(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    cmd = campaign(
        message=None, template={"id": TEMPLATE_WELCOME, "variables": {"firstName": "all"}}
    )
    del cmd["data"]["message"]
    await producer.publish(cmd)

    await events.wait_for(lambda e: e["type"] == "msgflash.campaign.created")
    (payload,) = await created_payloads(sandbox)
    assert payload["templateId"] == TEMPLATE_WELCOME
    assert payload["variables"] == {"firstName": "all"}
    assert "type" not in payload


async def test_noe_is_accepted_as_none_and_never_sent(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await producer.publish(campaign(repeat="noe"))
    await producer.publish(campaign(name="Weekly", repeat="weekly"))

    await events.wait_for(lambda e: e["type"] == "msgflash.campaign.created", count=2)
    repeats = {p["name"]: p["repeat"] for p in await created_payloads(sandbox)}
    assert repeats == {"Launch": "none", "Weekly": "weekly"}


BUTTONS = {
    "type": "buttons",
    "title": "Sale",
    "description": "Today only",
    "buttons": [
        {"kind": "url", "displayText": "Shop", "url": "https://example.com/shop"},
        {"kind": "copy", "displayText": "Code", "copyCode": "SALE10"},
    ],
}


async def test_buttons_campaign_on_a_business_instance_is_created(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await producer.publish(campaign(message=BUTTONS))

    await events.wait_for(lambda e: e["type"] == "msgflash.campaign.created")
    (payload,) = await created_payloads(sandbox)
    assert payload["buttons"] == [
        {"title": "url", "displayText": "Shop", "url": "https://example.com/shop"},
        {"title": "copy", "displayText": "Code", "copyCode": "SALE10"},
    ]


async def test_buttons_campaign_on_a_non_business_instance_fails_with_403(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    cmd = campaign(instanceId=INSTANCE_WARMING, message=BUTTONS)
    await producer.publish(cmd)

    (failed,) = await events.wait_for(lambda e: e["type"] == "msgflash.campaign.failed")
    assert failed["data"]["requestId"] == cmd["id"]
    assert failed["data"]["error"]["code"] == "UNSUPPORTED_FEATURE"
    assert failed["data"]["error"]["httpStatus"] == 403
    assert len(await created_payloads(sandbox)) == 1  # tried once, never retried


async def test_a_plan_without_campaigns_fails_the_command(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await sandbox.admin("PUT", "/_sandbox/features", {"campaigns": False})
    await producer.publish(campaign())

    (failed,) = await events.wait_for(lambda e: e["type"] == "msgflash.campaign.failed")
    assert failed["data"]["error"]["code"] == "CAMPAIGNS_NOT_AVAILABLE_ON_PLAN"


async def test_a_warming_instance_with_a_large_audience_warns_but_still_creates(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    for i in range(101):  # past the warming instance's 100-recipient cap
        status, _ = await sandbox.api(
            "POST", "/api/v1/contacts", {"name": f"Lead {i}", "phone": f"+4420{i:08d}"}
        )
        assert status == 201
    cmd = campaign(instanceId=INSTANCE_WARMING)
    await producer.publish(cmd)

    await events.wait_for(lambda e: e["type"] == "msgflash.campaign.created")
    (warning,) = await events.wait_for(lambda e: e["type"] == "msgflash.safety.warning")
    data = warning["data"]
    assert data["requestId"] == cmd["id"]
    assert data["subject"]["kind"] == "campaign" and data["subject"]["id"]
    assert data["instanceId"] == INSTANCE_WARMING
    assert data["decision"] == "warn"
    assert data["state"] == "warming"
    assert data["reasons"]
    assert data["appliedLimits"]["maxCampaignRecipients"] == 100
    assert data["audience"]["totalRecipients"] == 104
    health = await sandbox.requests(f"/api/v1/instances/{INSTANCE_WARMING}/health")
    assert len(health) == 1  # the pre-flight read


async def test_a_stable_instance_gets_no_warning(
    relay: Relay, events: EventTap, producer: Producer
) -> None:
    await producer.publish(campaign())
    await events.wait_for(lambda e: e["type"] == "msgflash.campaign.created")
    assert not [e for e in events.events if e["type"] == "msgflash.safety.warning"]


@pytest.mark.parametrize("content", ["both", "neither"])
async def test_both_or_neither_content_mode_is_invalid_without_calling_msgflash(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle, content: str
) -> None:
    cmd = campaign(template={"id": TEMPLATE_WELCOME, "variables": {}})
    if content == "neither":
        del cmd["data"]["message"], cmd["data"]["template"]
    await producer.publish(cmd)

    (failed,) = await events.wait_for(lambda e: e["type"] == "msgflash.campaign.failed")
    assert failed["data"]["error"]["code"] == "INVALID_EVENT"
    assert failed["data"]["error"]["details"]
    assert await sandbox.requests("/api/v1/campaigns") == []


async def test_location_messages_are_not_campaign_content(
    relay: Relay, events: EventTap, producer: Producer, sandbox: SandboxHandle
) -> None:
    await producer.publish(campaign(message={"type": "location", "latitude": 1, "longitude": 2}))
    (failed,) = await events.wait_for(lambda e: e["type"] == "msgflash.campaign.failed")
    fields = {d["field"] for d in failed["data"]["error"]["details"]}
    assert any(f.startswith("data.message") for f in fields)
    assert await sandbox.requests("/api/v1/campaigns") == []


async def test_send_campaign_from_the_cli_prints_the_created_event(
    relay: Relay, events: EventTap, sandbox: SandboxHandle
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--campaign", "--instance", "main", "--name", "From CLI", "--at", SCHEDULE,
         "--recipients", "tags:vip", "--text", "Hi VIPs"]
    )  # fmt: skip
    cmd = build_command(args)

    result = await publish_and_wait(relay.settings, cmd, timeout=15)

    assert result["type"] == "msgflash.campaign.created"
    assert result["data"]["requestId"] == cmd["id"]
    (payload,) = await created_payloads(sandbox)
    assert payload["recipients"] == {"type": "tags", "value": ["vip"]}
    assert payload["instanceId"] == INSTANCE_MAIN
