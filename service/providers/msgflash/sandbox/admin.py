"""``/_sandbox/*``: the test-only control surface (no auth, never under ``/api``, never
logged, never faulted): accounts, request log, faults, reset, plan, usage, limits, instances
and webhook deliveries.

A route about one account takes ``?account=NAME``; it may be left out while the sandbox has
a single account. The log and the deliveries take it as a filter.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.providers.msgflash.sandbox.account import usage_report
from service.providers.msgflash.sandbox.context import Sandbox, sandbox_of
from service.providers.msgflash.sandbox.envelope import data_response, not_found, read_object
from service.providers.msgflash.sandbox.envelope import validation_error as invalid
from service.providers.msgflash.sandbox.faults import FaultSettings
from service.providers.msgflash.sandbox.formats import iso_timestamp
from service.providers.msgflash.sandbox.plans import PlanFeatures, PlanLimits
from service.providers.msgflash.sandbox.safety import SAFETY_PROFILES
from service.providers.msgflash.sandbox.seed import InstanceStatus, SafetyState, SeedInstance
from service.providers.msgflash.sandbox.state import SandboxState, instance_record

Body = TypeVar("Body", bound=BaseModel)


class _AdminBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class PlanChange(_AdminBody):
    plan: str


class UsageChange(_AdminBody):
    """Missing counters are zero, so ``{}`` resets the month."""

    messages_count: int = Field(0, ge=0, alias="messagesCount")
    statuses_count: int = Field(0, ge=0, alias="statusesCount")
    api_requests_count: int = Field(0, ge=0, alias="apiRequestsCount")


class InstanceChange(_AdminBody):
    name: str | None = Field(None, min_length=1)
    wa_number: str | None = Field(None, alias="waNumber")
    status: InstanceStatus | None = None
    business: bool | None = None
    safety_state: SafetyState | None = Field(None, alias="safetyState")
    safety_score: int | None = Field(None, ge=0, le=100, alias="safetyScore")


def _parse(model: type[Body], raw: dict[str, Any]) -> Body:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(map(str, error["loc"])) or "(body)", "message": error["msg"]}
            for error in exc.errors()
        ]
        raise invalid(problems) from None


def _account(request: web.Request) -> tuple[Sandbox, SandboxState]:
    """The account ``?account=NAME`` names, or the only one."""
    sandbox = sandbox_of(request)
    name = request.query.get("account")
    if name is None and len(sandbox.accounts) == 1:
        return sandbox, next(iter(sandbox.accounts.values()))
    state = sandbox.accounts.get(name or "")
    if state is None:
        known = ", ".join(sandbox.accounts)
        problem = "unknown account" if name else "the sandbox has several accounts: name one"
        raise invalid([{"field": "account", "message": f"{problem} with ?account= ({known})"}])
    return sandbox, state


async def get_accounts(request: web.Request) -> web.Response:
    """Each account's name, plan and number of keys (never a key)."""
    sandbox = sandbox_of(request)
    return data_response(
        [
            {
                "name": name,
                "plan": state.account.plan_code,
                "apiKeys": sandbox.keys.key_count(name),
            }
            for name, state in sandbox.accounts.items()
        ]
    )


async def get_requests(request: web.Request) -> web.Response:
    log = sandbox_of(request).request_log
    query = request.query
    selected = log.select(
        path_prefix=query.get("path", ""), method=query.get("method"), account=query.get("account")
    )
    return data_response(selected)


async def clear_requests(request: web.Request) -> web.Response:
    sandbox_of(request).request_log.clear()
    return data_response({"cleared": True})


async def get_faults(request: web.Request) -> web.Response:
    return data_response(sandbox_of(request).faults.as_api())


async def put_faults(request: web.Request) -> web.Response:
    faults = sandbox_of(request).faults
    faults.configure(_parse(FaultSettings, await read_object(request)))
    return data_response(faults.as_api())


async def clear_faults(request: web.Request) -> web.Response:
    faults = sandbox_of(request).faults
    faults.clear()
    return data_response(faults.as_api())


async def reset(request: web.Request) -> web.Response:
    await sandbox_of(request).reset()
    return data_response({"reset": True})


async def put_plan(request: web.Request) -> web.Response:
    sandbox, state = _account(request)
    change = _parse(PlanChange, await read_object(request))
    if not sandbox.gate.knows(change.plan):
        known = ", ".join(sandbox.gate.plan_codes())
        raise invalid([{"field": "plan", "message": f"unknown plan; use one of: {known}"}])
    state.account.plan_code = change.plan
    return data_response(usage_report(sandbox, state))


async def get_usage(request: web.Request) -> web.Response:
    return data_response(usage_report(*_account(request)))


async def put_usage(request: web.Request) -> web.Response:
    sandbox, state = _account(request)
    change = _parse(UsageChange, await read_object(request))
    usage = state.account.usage
    usage.messages_count = change.messages_count
    usage.statuses_count = change.statuses_count
    usage.api_requests_count = change.api_requests_count
    return data_response(usage_report(sandbox, state))


async def put_limits(request: web.Request) -> web.Response:
    """Replace the limit overrides: ``{"monthlyOutboundQuota": 3}``; ``{}`` drops them all."""
    sandbox, state = _account(request)
    limits = _parse(PlanLimits, await read_object(request))
    given = limits.model_dump(by_alias=True, include=limits.model_fields_set)
    state.account.limit_overrides = given
    return data_response(usage_report(sandbox, state))


async def put_features(request: web.Request) -> web.Response:
    """Replace the feature overrides: ``{"campaigns": false}`` gates campaigns off."""
    sandbox, state = _account(request)
    features = _parse(PlanFeatures, await read_object(request))
    given = features.model_dump(by_alias=True, include=features.model_fields_set)
    state.account.feature_overrides = given
    return data_response(usage_report(sandbox, state))


async def put_instance(request: web.Request) -> web.Response:
    """Add or replace an instance: ``{id?, name, waNumber, status, business, safetyState}``."""
    sandbox, state = _account(request)
    raw = await read_object(request)
    seed = _parse(SeedInstance, {"id": str(uuid.uuid4()), **raw})
    instance = instance_record(seed, state.user.id, sandbox.clock())
    state.instances[instance.id] = instance
    return data_response(instance.as_api(), status=201)


async def patch_instance(request: web.Request) -> web.Response:
    sandbox, state = _account(request)
    instance = state.instances.get(request.match_info["id"])
    if instance is None:
        raise not_found("Instance")
    change = _parse(InstanceChange, await read_object(request))
    fields = {key: value for key, value in change.model_dump().items() if value is not None}
    if "safety_state" in fields and "safety_score" not in fields:
        fields["safety_score"] = SAFETY_PROFILES[fields["safety_state"]].score
    now = sandbox.clock()
    updated = replace(instance, **fields, updated_at=now)
    state.instances[updated.id] = updated
    if updated.status != instance.status and updated.status in ("connected", "disconnected"):
        sandbox.emit(
            state,
            {
                "event": f"instance.{updated.status}",
                "instanceId": updated.id,
                "status": updated.status,
                "timestamp": iso_timestamp(now),
            },
        )
    return data_response(updated.as_api())


async def get_deliveries(request: web.Request) -> web.Response:
    dispatcher = sandbox_of(request).dispatcher
    return data_response(dispatcher.attempts(request.query.get("account")))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/_sandbox/accounts", get_accounts)
    router.add_get("/_sandbox/requests", get_requests)
    router.add_delete("/_sandbox/requests", clear_requests)
    router.add_get("/_sandbox/faults", get_faults)
    router.add_put("/_sandbox/faults", put_faults)
    router.add_delete("/_sandbox/faults", clear_faults)
    router.add_post("/_sandbox/reset", reset)
    router.add_put("/_sandbox/plan", put_plan)
    router.add_get("/_sandbox/usage", get_usage)
    router.add_put("/_sandbox/usage", put_usage)
    router.add_put("/_sandbox/limits", put_limits)
    router.add_put("/_sandbox/features", put_features)
    router.add_post("/_sandbox/instances", put_instance)
    router.add_patch("/_sandbox/instances/{id}", patch_instance)
    router.add_get("/_sandbox/webhook-deliveries", get_deliveries)
