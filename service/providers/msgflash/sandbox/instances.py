"""``/api/v1/instances``: list, detail, live state and warmup health (§5).

Only an instance's ``id`` addresses it: names and WhatsApp numbers are not ids.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.providers.msgflash.sandbox.context import sandbox_of, state_of
from service.providers.msgflash.sandbox.envelope import data_response, not_found
from service.providers.msgflash.sandbox.formats import iso_timestamp
from service.providers.msgflash.sandbox.records import InstanceRecord
from service.providers.msgflash.sandbox.safety import (
    SAFETY_PROFILES,
    health_recommendations,
    warmup_policy,
)
from service.providers.msgflash.sandbox.state import SandboxState

# Evolution API's raw connection states, as MsgFlash passes them through.
_PROVIDER_STATE = {
    "connected": "open",
    "connecting": "connecting",
    "disconnected": "close",
    "suspended": "close",
}
_HOUR = 3600.0


def find_instance(state: SandboxState, instance_id: str) -> InstanceRecord:
    instance = state.instances.get(instance_id)
    if instance is None:
        raise not_found("Instance")
    return instance


async def list_instances(request: web.Request) -> web.Response:
    state = state_of(request)
    return data_response([instance.as_api() for instance in state.instances.values()])


async def get_instance(request: web.Request) -> web.Response:
    instance = find_instance(state_of(request), request.match_info["id"])
    return data_response(instance.as_api())


async def get_instance_state(request: web.Request) -> web.Response:
    instance = find_instance(state_of(request), request.match_info["id"])
    return data_response(
        {
            "instanceId": instance.id,
            "status": instance.status,
            "providerState": _PROVIDER_STATE[instance.status],
        }
    )


async def get_instance_health(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    instance = find_instance(state, request.match_info["id"])
    now = sandbox.clock()
    age_days = SAFETY_PROFILES[instance.safety_state].age_days
    return data_response(
        {
            "instanceId": instance.id,
            "safetyState": instance.safety_state,
            "safetyScore": instance.safety_score,
            "firstConnectedAt": iso_timestamp(instance.created_at - age_days * 24 * _HOUR),
            "warmupPolicy": warmup_policy(instance.safety_state),
            "usageWindowSummary": _usage_window(state, instance.id, now),
            "recommendations": health_recommendations(instance.safety_state),
        }
    )


def _usage_window(state: SandboxState, instance_id: str, now: float) -> dict[str, Any]:
    last_hour: list[str] = []
    last_day: list[str] = []
    for message in state.messages.values():
        if message.instance_id != instance_id or message.status == "failed":
            continue
        if message.created_at >= now - 24 * _HOUR:
            last_day.append(message.to)
        if message.created_at >= now - _HOUR:
            last_hour.append(message.to)
    return {
        "outbound1h": len(last_hour),
        "outbound24h": len(last_day),
        "uniqueRecipients1h": len(set(last_hour)),
        "uniqueRecipients24h": len(set(last_day)),
        "inboundReplies24h": 0,  # the sandbox receives no inbound messages
        "inboundReplies7d": 0,
    }


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/instances", list_instances)
    router.add_get("/api/v1/instances/{id}", get_instance)
    router.add_get("/api/v1/instances/{id}/state", get_instance_state)
    router.add_get("/api/v1/instances/{id}/health", get_instance_health)
