"""The quota gate: after a monthly-quota error every further call with that API key fails, so stop.

Closed, the gate defers commands without calling MsgFlash; every ``probe_seconds`` it lets one
command through as a probe, and the first success opens it again. Closing publishes one
``quota.exhausted`` event (deduplicated across replicas through the state store).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog

from service.contract.errors import QUOTA_CODES, ErrorInfo, MsgFlashError
from service.metrics import Metrics

log = structlog.get_logger("service.providers.msgflash.quota")

OnClosed = Callable[[MsgFlashError], Awaitable[None]]


class QuotaGate:
    def __init__(
        self,
        *,
        key_fingerprint: str,
        account: str,
        probe_seconds: float,
        metrics: Metrics,
        on_closed: OnClosed | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key_fingerprint
        # The metric's label: an account name, never key material (even a fingerprint).
        self._account = account
        self._probe_seconds = probe_seconds
        self._metrics = metrics
        self._on_closed = on_closed
        self._clock = clock
        self._closed_by: MsgFlashError | None = None
        self._next_probe = 0.0
        metrics.quota_gate_closed.labels(account).set(0)

    @property
    def closed(self) -> bool:
        return self._closed_by is not None

    def allows_call(self) -> bool:
        """True when a call may go out: the gate is open, or it is time for its one probe."""
        if self._closed_by is None:
            return True
        now = self._clock()
        if now >= self._next_probe:
            self._next_probe = now + self._probe_seconds  # exactly one probe per period
            log.info("quota_gate_probe", key=self._key)
            return True
        return False

    async def observe(self, error: MsgFlashError) -> None:
        if error.code not in QUOTA_CODES:
            return
        newly = self._closed_by is None
        self._closed_by = error
        self._next_probe = self._clock() + self._probe_seconds
        if newly:
            self._metrics.quota_gate_closed.labels(self._account).set(1)
            log.warning("quota_gate_closed", key=self._key, code=error.code)
            if self._on_closed is not None:
                await self._on_closed(error)

    def record_success(self) -> None:
        if self._closed_by is not None:
            self._closed_by = None
            self._metrics.quota_gate_closed.labels(self._account).set(0)
            log.info("quota_gate_opened", key=self._key)

    def error_info(self) -> ErrorInfo:
        code = self._closed_by.code if self._closed_by is not None else "QUOTA_GATE_CLOSED"
        return ErrorInfo(
            code,
            f"MsgFlash calls for API key {self._key} are suspended after {code}; the relay "
            f"probes again every {self._probe_seconds:g} s: raise the plan's quota or wait for "
            "the monthly reset",
            http_status=429,
            retryable=True,
        )
