"""``/api/v1/instances`` (§5): the seeded instances, their state and warmup health."""

from __future__ import annotations

import pytest

from service.providers.msgflash.sandbox.seed import (
    INSTANCE_CONNECTING,
    INSTANCE_MAIN,
    INSTANCE_NEW,
    INSTANCE_OFFLINE,
    INSTANCE_WARMING,
)
from tests.providers.msgflash.sandbox.conftest import Api


async def test_the_list_is_a_plain_array_of_the_seeded_instances(api: Api) -> None:
    instances = await api.ok("GET", "/api/v1/instances")
    summary = {(i["id"], i["name"], i["waNumber"], i["status"]) for i in instances}
    assert summary == {
        (INSTANCE_MAIN, "main", "+2250700000001", "connected"),
        (INSTANCE_WARMING, "warming", "+2250700000002", "connected"),
        (INSTANCE_NEW, "fresh", "+2250700000003", "connected"),
        (INSTANCE_CONNECTING, "backup", "+2250700000004", "connecting"),
        (INSTANCE_OFFLINE, "offline", "+2250700000005", "disconnected"),
    }


async def test_the_detail_has_the_documented_fields(api: Api) -> None:
    instance = await api.ok("GET", f"/api/v1/instances/{INSTANCE_MAIN}")
    assert set(instance) >= {
        "id", "userId", "name", "waNumber", "status", "webhook", "meta", "deletedAt",
        "createdAt", "updatedAt",
    }  # fmt: skip
    assert instance["meta"]["whatsappBusiness"] is True


@pytest.mark.parametrize("alias", ["main", "+2250700000001", "2250700000001"])
async def test_names_and_numbers_are_not_ids(api: Api, alias: str) -> None:
    status, body = await api.get(f"/api/v1/instances/{alias}")
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("instance", "status", "provider"),
    [
        (INSTANCE_MAIN, "connected", "open"),
        (INSTANCE_CONNECTING, "connecting", "connecting"),
        (INSTANCE_OFFLINE, "disconnected", "close"),
    ],
)
async def test_the_state_reports_the_provider_state(
    api: Api, instance: str, status: str, provider: str
) -> None:
    state = await api.ok("GET", f"/api/v1/instances/{instance}/state")
    assert state == {"instanceId": instance, "status": status, "providerState": provider}


async def test_the_health_of_a_warming_instance_carries_the_documented_policy(api: Api) -> None:
    await api.ok(
        "POST",
        "/api/v1/messages/send",
        {"instanceId": INSTANCE_WARMING, "to": "+33612345678", "type": "text", "text": "Hi"},
    )
    health = await api.ok("GET", f"/api/v1/instances/{INSTANCE_WARMING}/health")
    assert (health["safetyState"], health["safetyScore"]) == ("warming", 56)
    policy = health["warmupPolicy"]
    assert (policy["hourlyOutboundCap"], policy["dailyOutboundCap"]) == (25, 100)
    assert (policy["maxCampaignRecipients"], policy["maxColdRatio"]) == (100, 0.4)
    assert set(policy) >= {"state", "instanceAgeDays", "hourlyUniqueRecipientsCap"}
    usage = health["usageWindowSummary"]
    assert (usage["outbound1h"], usage["uniqueRecipients24h"]) == (1, 1)
    assert set(usage) == {
        "outbound1h", "outbound24h", "uniqueRecipients1h", "uniqueRecipients24h",
        "inboundReplies24h", "inboundReplies7d",
    }  # fmt: skip
    assert health["recommendations"] and health["firstConnectedAt"].endswith("Z")


async def test_the_health_of_an_unknown_instance_is_not_found(api: Api) -> None:
    status, _ = await api.get("/api/v1/instances/00000000-0000-4000-8000-00000000ffff/health")
    assert status == 404
