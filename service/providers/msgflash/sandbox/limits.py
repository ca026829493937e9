"""The three limits MsgFlash enforces (§3): per-key requests per second, the monthly API
request quota and the monthly outbound quota; plus the plan's feature gates.

Rejected requests never count: a request refused by the limiter or by a quota does not
use quota, and only a send that is accepted counts as outbound usage.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Literal

from service.providers.msgflash.sandbox.envelope import (
    API_QUOTA,
    OUTBOUND_QUOTA,
    RATE_LIMITED,
    ApiError,
    too_many,
)
from service.providers.msgflash.sandbox.plans import (
    FeatureName,
    PlanFeatures,
    PlanLimits,
    PlanSpec,
    effective_features,
    effective_limits,
)
from service.providers.msgflash.sandbox.state import Account


class RateLimiter:
    """At most ``per_second`` requests per API key in any 1-second window.

    ``sliding``: the window ends now (a log of admission times); ``fixed``: windows start on
    whole seconds, so a burst straddling a boundary can reach twice the rate, as with many
    real limiters. MsgFlash does not document its algorithm (§17).
    """

    def __init__(
        self,
        per_second: float,
        window: Literal["sliding", "fixed"],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_second = per_second
        self._window = window
        self._clock = clock
        self._admitted: dict[str, deque[float]] = {}
        self._fixed: dict[str, tuple[int, int]] = {}

    def admit(self, key: str) -> bool:
        now = self._clock()
        if self._window == "fixed":
            return self._admit_fixed(key, now)
        admitted = self._admitted.setdefault(key, deque())
        while admitted and admitted[0] <= now - 1.0:
            admitted.popleft()
        if len(admitted) >= self._per_second:
            return False
        admitted.append(now)
        return True

    def _admit_fixed(self, key: str, now: float) -> bool:
        second = math.floor(now)
        start, count = self._fixed.get(key, (second, 0))
        if start != second:
            start, count = second, 0
        if count >= self._per_second:
            return False
        self._fixed[key] = (start, count + 1)
        return True

    def clear(self) -> None:
        self._admitted.clear()
        self._fixed.clear()


class PlanGate:
    """Answers "may this account do X?" from the plan table, the account's plan and the
    admin overrides, and raises the MsgFlash error when it may not."""

    def __init__(self, plans: Mapping[str, PlanSpec]) -> None:
        self._plans = plans

    def plan(self, account: Account) -> PlanSpec:
        return self._plans[account.plan_code]

    def plan_spec(self, code: str) -> PlanSpec:
        return self._plans[code]

    def knows(self, plan_code: str) -> bool:
        return plan_code in self._plans

    def plan_codes(self) -> list[str]:
        return sorted(self._plans)

    def limits(self, account: Account) -> PlanLimits:
        return effective_limits(self.plan(account), account.limit_overrides)

    def features(self, account: Account) -> PlanFeatures:
        return effective_features(self.plan(account), account.feature_overrides)

    def charge_api_request(self, account: Account) -> None:
        quota = self.limits(account).monthly_api_request_quota
        if quota is not None and account.usage.api_requests_count >= quota:
            raise too_many(API_QUOTA)
        account.usage.api_requests_count += 1

    def ensure_outbound_available(self, account: Account) -> None:
        quota = self.limits(account).monthly_outbound_quota
        if quota is not None and account.usage.effective_outbound >= quota:
            raise too_many(OUTBOUND_QUOTA)

    def require_feature(self, account: Account, feature: FeatureName, code: str) -> None:
        if not self.features(account).model_dump(by_alias=True)[feature]:
            plan = self.plan(account).code
            raise ApiError(403, code, f"Feature {feature!r} is not available on the {plan} plan")


def rate_limited() -> ApiError:
    return too_many(RATE_LIMITED)
