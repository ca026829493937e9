"""The account's own routes: ``/me``, billing plans, subscription and usage (§13), each about
the account of the key that asks.

The sandbox's month never rolls over: usage is reset by ``PUT /_sandbox/usage`` instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from service.providers.msgflash.sandbox.context import Sandbox, sandbox_of, state_of
from service.providers.msgflash.sandbox.envelope import data_response
from service.providers.msgflash.sandbox.formats import iso_timestamp
from service.providers.msgflash.sandbox.state import SandboxState


def _period(now: float) -> dict[str, str]:
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (start + timedelta(days=32)).replace(day=1)
    end = next_month - timedelta(milliseconds=1)
    return {"start": iso_timestamp(start.timestamp()), "end": iso_timestamp(end.timestamp())}


def usage_report(sandbox: Sandbox, state: SandboxState) -> dict[str, Any]:
    account = state.account
    plan = sandbox.gate.plan(account)
    usage = account.usage
    connected = [i for i in state.instances.values() if i.status == "connected"]
    return {
        "plan": {"code": plan.code, "name": plan.name},
        "limits": sandbox.gate.limits(account).model_dump(by_alias=True),
        "features": sandbox.gate.features(account).model_dump(by_alias=True),
        "usage": {
            "messagesCount": usage.messages_count,
            "statusesCount": usage.statuses_count,
            "effectiveOutboundUsage": usage.effective_outbound,
            "apiRequestsCount": usage.api_requests_count,
            "activeInstancesCount": len(connected),
            "activeApiKeysCount": sandbox.keys.key_count(state.name),
        },
        "period": _period(sandbox.clock()),
    }


async def get_usage(request: web.Request) -> web.Response:
    return data_response(usage_report(sandbox_of(request), state_of(request)))


async def get_subscription(request: web.Request) -> web.Response:
    report = usage_report(sandbox_of(request), state_of(request))
    plan = {**report["plan"], "limits": report["limits"], "features": report["features"]}
    subscription = {
        "plan": plan,
        "scheduledPlan": None,
        "scheduledPlanAt": None,
        "scheduledAction": None,
    }
    return data_response(
        {"subscription": subscription, "usage": report["usage"], "period": report["period"]}
    )


async def list_plans(request: web.Request) -> web.Response:
    gate = sandbox_of(request).gate
    return data_response([gate.plan_spec(code).as_api() for code in gate.plan_codes()])


async def get_me(request: web.Request) -> web.Response:
    """Undocumented shape; the console's ``User`` type, as the fact sheet suggests (§17)."""
    state = state_of(request)
    user = state.user
    return data_response(
        {
            "id": user.id,
            "fullName": user.full_name,
            "email": user.email,
            "phone": user.phone,
            "plan": state.account.plan_code,
            "displayName": user.full_name,
            "avatarUrl": None,
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/me", get_me)
    router.add_get("/api/v1/usage", get_usage)  # legacy alias
    router.add_get("/api/v1/billing/usage", get_usage)
    router.add_get("/api/v1/billing/subscription", get_subscription)
    router.add_get("/api/v1/billing/plans", list_plans)
