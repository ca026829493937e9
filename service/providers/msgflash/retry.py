"""The in-process retry policy for MsgFlash calls: which failures to retry, and how long to wait.

Pure decisions (``retries``, ``wait_seconds``, ``parse_retry_after``) plus the tenacity wiring
that the client drives. Deferred retries across minutes or hours belong to the pipeline's retry
tiers, not here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from service.contract.errors import MsgFlashError, RetryClass
from service.metrics import Metrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a MsgFlash call gets and how long to wait between them.

    Waits are exponential with full jitter (a uniform draw below the exponential ceiling), so a
    fleet of relays that hit the limiter together does not retry in lockstep. A ``Retry-After``
    from MsgFlash replaces the computed wait, capped by ``max_retry_after``.
    """

    max_attempts: int = 5
    rate_limited: tuple[float, float] = (0.25, 4.0)
    transient: tuple[float, float] = (0.5, 8.0)
    max_retry_after: float = 30.0
    # A draw in [0, 1): injectable so tests can pin the jitter.
    jitter: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"RetryPolicy.max_attempts must be at least 1 (RELAY_RETRY_MAX_ATTEMPTS), "
                f"got {self.max_attempts}"
            )
        for name, (initial, ceiling) in (
            ("rate_limited", self.rate_limited),
            ("transient", self.transient),
        ):
            if not 0 <= initial <= ceiling:
                raise ValueError(
                    f"RetryPolicy.{name} must be (initial, max) with 0 <= initial <= max, "
                    f"got ({initial}, {ceiling})"
                )
        if self.max_retry_after < 0:
            raise ValueError(
                f"RetryPolicy.max_retry_after must not be negative, got {self.max_retry_after}"
            )

    def _backoff(self) -> dict[RetryClass, tuple[float, float] | None]:
        """The table: backoff window per retry class; ``None`` means "do not retry in-process".

        QUOTA is deliberately absent from in-process retries: a monthly quota cannot clear in
        seconds, so waiting here would only hold a consumer slot. The error is raised at once
        and the caller's quota gate and deferred retry tiers take over.
        """
        return {
            RetryClass.PERMANENT: None,
            RetryClass.QUOTA: None,
            RetryClass.RATE_LIMITED: self.rate_limited,
            RetryClass.TRANSIENT: self.transient,
        }

    def retries(self, error: MsgFlashError) -> bool:
        """Is ``error`` worth another attempt within this call?"""
        return self._backoff()[error.retry_class] is not None

    def wait_seconds(self, error: MsgFlashError, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next."""
        window = self._backoff()[error.retry_class]
        if window is None:
            return 0.0
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        initial, ceiling = window
        exponential = min(ceiling, initial * 2.0 ** max(attempt - 1, 0))
        return self.jitter() * exponential

    def retrying(
        self,
        metrics: Metrics,
        *,
        endpoint: str,
        give_up: Callable[[MsgFlashError], bool] | None = None,
    ) -> AsyncRetrying:
        """A tenacity controller for one call to ``endpoint`` (a route label, for logs).

        ``give_up`` vetoes a retry the table would allow, for failures where sending again could
        do harm (an unanswered POST that cannot be reconciled).
        """

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, MsgFlashError) or not self.retries(exc):
                return False
            return give_up is None or not give_up(exc)

        def wait(state: RetryCallState) -> float:
            return self.wait_seconds(_failure(state), state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            error = _failure(state)
            metrics.retries.labels(reason=error.code).inc()
            log.info(
                "msgflash_call_retrying",
                endpoint=endpoint,
                code=error.code,
                httpStatus=error.http_status,
                attempt=state.attempt_number,
                waitSeconds=round(state.upcoming_sleep, 3),
            )

        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            retry=retry_if_exception(should_retry),
            wait=wait,
            before_sleep=before_sleep,
            reraise=True,
        )


def _failure(state: RetryCallState) -> MsgFlashError:
    """The MsgFlashError of the attempt that just failed (the retry predicate guarantees it)."""
    error = state.outcome.exception() if state.outcome is not None else None
    if not isinstance(error, MsgFlashError):
        raise TypeError(f"retry state holds no MsgFlashError: {error!r}")
    return error


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Unparseable values give ``None`` (the computed backoff applies); dates in the past give 0.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
