"""Fault injection: latency, 5xx, forced 429s, dropped connections and hangs, on demand.

Every fault but ``drop_after`` strikes before the request is processed, so it has no side
effect; ``drop_after`` processes the request and then loses the response, the one case a
client must reconcile. Deciding is pure given the settings, a clock and a seeded RNG.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Rate = float
ForcedCode = Literal[
    "API_RATE_LIMIT_EXCEEDED",
    "MONTHLY_API_REQUEST_QUOTA_EXCEEDED",
    "MONTHLY_OUTBOUND_QUOTA_EXCEEDED",
]

# The code MsgFlash would put on an injected error status.
_CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "API_RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "PROVIDER_ERROR",
    503: "PROVIDER_UNAVAILABLE",
    504: "PROVIDER_TIMEOUT",
}


class FaultSettings(BaseModel):
    """The body of ``PUT /_sandbox/faults`` (and ``faults`` in the config file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(0, ge=0)
    error_rate: Rate = Field(0, ge=0, le=1)
    error_statuses: tuple[int, ...] = Field((500, 502, 503), min_length=1)
    drop_rate: Rate = Field(0, ge=0, le=1)
    drop_after_rate: Rate = Field(0, ge=0, le=1)
    hang_rate: Rate = Field(0, ge=0, le=1)
    hang_seconds: float = Field(30, ge=0)
    force_429_rate: Rate = Field(0, ge=0, le=1)
    force_429_code: ForcedCode = "API_RATE_LIMIT_EXCEEDED"
    force_429_count: int | None = Field(None, ge=0)
    # MsgFlash documents no Retry-After; set, forced 429s carry one (how a client honours it).
    force_429_retry_after: int | None = Field(None, ge=0)
    duration_seconds: float | None = Field(None, gt=0)
    paths: tuple[str, ...] = ("/api/v1/",)
    random_seed: int | None = None

    @field_validator("error_statuses")
    @classmethod
    def _error_statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 400 <= status <= 599 for status in value):
            raise ValueError("every status must be an HTTP error status (400-599)")
        return value


@dataclass(frozen=True, slots=True)
class InjectedError:
    status: int
    code: str
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What happens to one request: wait, then maybe one fault instead of processing."""

    latency_seconds: float = 0.0
    error: InjectedError | None = None
    drop: bool = False
    hang: bool = False
    drop_after: bool = False

    @property
    def name(self) -> str | None:
        """The fault's name for the request log."""
        if self.error is not None:
            return "force_429" if self.error.status == 429 else "error"
        for name in ("drop", "hang", "drop_after"):
            if getattr(self, name):
                return name
        return "latency" if self.latency_seconds else None


class FaultInjector:
    """Holds the active fault settings and decides, request by request, what strikes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._settings: FaultSettings | None = None
        self._since = 0.0
        self._forced_left = 0
        self._rng = random.Random()

    def configure(self, settings: FaultSettings | None) -> None:
        self._settings = settings
        self._since = self._clock()
        self._forced_left = (settings.force_429_count or 0) if settings else 0
        self._rng = random.Random(settings.random_seed if settings else None)

    def clear(self) -> None:
        self.configure(None)

    def plan_for(self, path: str) -> FaultPlan | None:
        settings = self._active()
        if settings is None or not path.startswith(settings.paths):
            return None
        return FaultPlan(
            latency_seconds=settings.latency_ms / 1000,
            error=self._error(settings),
            drop=self._roll(settings.drop_rate),
            hang=self._roll(settings.hang_rate),
            drop_after=self._roll(settings.drop_after_rate),
        )

    def hang_seconds(self) -> float:
        return self._settings.hang_seconds if self._settings else 0.0

    def as_api(self) -> dict[str, Any]:
        settings = self._active()
        shown = (settings or FaultSettings()).model_dump(mode="json")
        remaining = None
        if settings is not None and settings.duration_seconds is not None:
            remaining = max(0.0, settings.duration_seconds - (self._clock() - self._since))
        left = self._forced_left if settings and settings.force_429_count is not None else None
        return {
            **shown,
            "active": settings is not None,
            "force_429_left": left,
            "seconds_left": remaining,
        }

    def _active(self) -> FaultSettings | None:
        settings = self._settings
        if settings is None or settings.duration_seconds is None:
            return settings
        if self._clock() - self._since >= settings.duration_seconds:
            self.clear()
            return None
        return settings

    def _error(self, settings: FaultSettings) -> InjectedError | None:
        forced = InjectedError(429, settings.force_429_code, settings.force_429_retry_after)
        if self._forced_left > 0:
            self._forced_left -= 1
            return forced
        if self._roll(settings.force_429_rate):
            return forced
        if self._roll(settings.error_rate):
            status = self._rng.choice(settings.error_statuses)
            fallback = "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"
            return InjectedError(status, _CODE_BY_STATUS.get(status, fallback))
        return None

    def _roll(self, rate: Rate) -> bool:
        return rate > 0 and self._rng.random() < rate
