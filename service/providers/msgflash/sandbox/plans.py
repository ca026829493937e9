"""The plan table: what each MsgFlash plan allows, and the limits in force after overrides.

MsgFlash published three revisions of its plans (fact sheet §13). The defaults are the
latest one (free, pro, max), plus ``starter`` and ``plus`` from the live site (rev B) and an
``unlimited`` plan for benchmarks. ``None`` as a limit means unlimited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LimitName = Literal[
    "maxInstances",
    "maxApiKeys",
    "maxWebhookEndpoints",
    "monthlyOutboundQuota",
    "monthlyApiRequestQuota",
    "maxContactGroups",
]
FeatureName = Literal["campaigns", "statuses", "voiceNotes", "webhooks", "numberLookups"]


class _WireModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class PlanLimits(_WireModel):
    max_instances: int | None = Field(None, ge=0, alias="maxInstances")
    max_api_keys: int | None = Field(None, ge=0, alias="maxApiKeys")
    max_webhook_endpoints: int | None = Field(None, ge=0, alias="maxWebhookEndpoints")
    monthly_outbound_quota: int | None = Field(None, ge=0, alias="monthlyOutboundQuota")
    monthly_api_request_quota: int | None = Field(None, ge=0, alias="monthlyApiRequestQuota")
    max_contact_groups: int | None = Field(None, ge=0, alias="maxContactGroups")


class PlanFeatures(_WireModel):
    campaigns: bool = True
    statuses: bool = False
    voice_notes: bool = Field(True, alias="voiceNotes")
    webhooks: bool = True
    number_lookups: bool = Field(True, alias="numberLookups")


class PlanSpec(_WireModel):
    """One row of the plan table, in the shape of ``GET /api/v1/billing/plans``."""

    code: str
    name: str
    price_eur: float = Field(0, ge=0, alias="priceEur")
    limits: PlanLimits = PlanLimits()
    features: PlanFeatures = PlanFeatures()

    def as_api(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)


def _plan(code: str, price: float, limits: tuple[int | None, ...], statuses: bool) -> PlanSpec:
    instances, outbound, api, keys, webhooks, groups = limits
    return PlanSpec(
        code=code,
        name=code.upper() if code == "max" else code.capitalize(),
        price_eur=price,
        limits=PlanLimits(
            max_instances=instances,
            monthly_outbound_quota=outbound,
            monthly_api_request_quota=api,
            max_api_keys=keys,
            max_webhook_endpoints=webhooks,
            max_contact_groups=groups,
        ),
        features=PlanFeatures(statuses=statuses),
    )


#                     instances, outbound, API requests, keys, webhooks, groups
DEFAULT_PLANS: Mapping[str, PlanSpec] = {
    "free": _plan("free", 0, (1, 500, 500, 1, 3, 10), statuses=False),
    "starter": _plan("starter", 9, (2, 5_000, 10_000, 3, 3, 10), statuses=False),
    "pro": _plan("pro", 19, (5, 50_000, 150_000, 5, 15, 50), statuses=False),
    "plus": _plan("plus", 39, (20, 150_000, 500_000, 10, 50, None), statuses=True),
    "max": _plan("max", 39, (20, 150_000, 500_000, 10, 50, None), statuses=False),
    "unlimited": _plan("unlimited", 0, (None,) * 6, statuses=True),
}


def effective_limits(plan: PlanSpec, overrides: Mapping[str, int | None]) -> PlanLimits:
    """The plan's limits with the admin overrides (wire names) laid over them."""
    return PlanLimits.model_validate({**plan.limits.model_dump(by_alias=True), **overrides})


def effective_features(plan: PlanSpec, overrides: Mapping[str, bool]) -> PlanFeatures:
    return PlanFeatures.model_validate({**plan.features.model_dump(by_alias=True), **overrides})
