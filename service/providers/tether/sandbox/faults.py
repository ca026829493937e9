"""Fault injection: latency, error storms, forced 429s, lost and late answers, on demand.

``error``/``429`` strike before processing (no side effect). ``drop_after`` and ``late_answer``
process the request and then lose or delay its answer: the cases a client must reconcile.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FaultSettings(BaseModel):
    """The body of ``PUT /_sandbox/faults`` (and ``faults`` in the config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(0, ge=0)
    error_rate: float = Field(0, ge=0, le=1)
    error_count: int | None = Field(None, ge=0)  # the next N matching requests fail
    error_statuses: tuple[int, ...] = Field((503,), min_length=1)
    force_429_count: int | None = Field(None, ge=0)
    drop_after_rate: float = Field(0, ge=0, le=1)
    drop_after_count: int | None = Field(None, ge=0)
    late_answer_seconds: float = Field(0, ge=0)
    late_answer_count: int | None = Field(None, ge=0)  # None with seconds > 0: every request
    duration_seconds: float | None = Field(None, gt=0)
    # The first N matching requests pass untouched before any fault strikes: how a test aims
    # a fault at the k-th create of a split campaign.
    pass_count: int = Field(0, ge=0)
    paths: tuple[str, ...] = ("/api/",)
    methods: tuple[str, ...] | None = None  # None: every method
    random_seed: int | None = None


@dataclass(frozen=True, slots=True)
class FaultPlan:
    latency_seconds: float = 0.0
    error_status: int | None = None
    drop_after: bool = False
    late_seconds: float = 0.0

    @property
    def name(self) -> str | None:
        if self.error_status is not None:
            return "force_429" if self.error_status == 429 else "error"
        if self.drop_after:
            return "drop_after"
        if self.late_seconds:
            return "late_answer"
        return "latency" if self.latency_seconds else None


class FaultInjector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._settings: FaultSettings | None = None
        self._since = 0.0
        self._left: dict[str, int | None] = {}
        self._passes = 0
        self._rng = random.Random()

    def configure(self, settings: FaultSettings | None) -> None:
        self._settings = settings
        self._since = self._clock()
        self._rng = random.Random(settings.random_seed if settings else None)
        self._passes = settings.pass_count if settings else 0
        self._left = {
            "error": settings.error_count if settings else None,
            "429": settings.force_429_count if settings else None,
            "drop_after": settings.drop_after_count if settings else None,
            "late": settings.late_answer_count if settings else None,
        }

    def plan_for(self, method: str, path: str) -> FaultPlan | None:
        s = self._active()
        if s is None or not path.startswith(s.paths):
            return None
        if s.methods is not None and method.upper() not in s.methods:
            return None
        if self._passes > 0:
            self._passes -= 1
            return None
        if self._take("429", 0.0):
            return FaultPlan(s.latency_ms / 1000, error_status=429)
        if self._take("error", s.error_rate):
            return FaultPlan(s.latency_ms / 1000, error_status=self._rng.choice(s.error_statuses))
        late = (
            s.late_answer_seconds if self._take("late", 1.0 if s.late_answer_seconds else 0) else 0
        )
        return FaultPlan(
            s.latency_ms / 1000,
            drop_after=self._take("drop_after", s.drop_after_rate),
            late_seconds=late,
        )

    def _take(self, kind: str, rate: float) -> bool:
        left = self._left.get(kind)
        if left is not None:
            if left <= 0:
                return False
            self._left[kind] = left - 1
            return True
        return rate > 0 and self._rng.random() < rate

    def as_api(self) -> dict[str, Any]:
        settings = self._active()
        shown = (settings or FaultSettings()).model_dump(mode="json")
        left = {**self._left, "pass": self._passes}
        return {**shown, "active": settings is not None, "left": left}

    def _active(self) -> FaultSettings | None:
        s = self._settings
        lasts = s.duration_seconds if s is not None else None
        if lasts is not None and self._clock() - self._since >= lasts:
            self.configure(None)
            return None
        return s
