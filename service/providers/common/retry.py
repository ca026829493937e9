"""In-process retries of provider calls, the same for every provider: which failures to retry,
how long to wait, and how one logical call is run under that policy.

Pure decisions (``RetryPolicy.retries``, ``RetryPolicy.wait_seconds``, ``parse_retry_after``)
plus ``Retrier``, the tenacity wiring a provider's client drives with its own error type and
retry counter. Deferred retries across minutes or hours belong to the pipeline's retry tiers,
not here.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Generic, TypeVar

import structlog
from prometheus_client import Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from service.contract.errors import ProviderError, RetryClass

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=ProviderError)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a provider call gets and how long to wait between them.

    Waits are exponential with full jitter (a uniform draw below the exponential ceiling), so a
    fleet of relays that hit a limiter together does not retry in lockstep. A ``Retry-After``
    from the provider replaces the computed wait, capped by ``max_retry_after``.
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

        QUOTA is deliberately absent from in-process retries: a quota cannot clear in seconds,
        so waiting here would only hold a consumer slot. The error is returned at once and the
        caller's quota handling and deferred retry tiers take over.
        """
        return {
            RetryClass.PERMANENT: None,
            RetryClass.QUOTA: None,
            RetryClass.RATE_LIMITED: self.rate_limited,
            RetryClass.TRANSIENT: self.transient,
        }

    def retries(self, error: ProviderError) -> bool:
        """Is ``error`` worth another attempt within this call?"""
        return self._backoff()[error.retry_class] is not None

    def wait_seconds(self, error: ProviderError, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next."""
        window = self._backoff()[error.retry_class]
        if window is None:
            return 0.0
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        initial, ceiling = window
        exponential = min(ceiling, initial * 2.0 ** max(attempt - 1, 0))
        return self.jitter() * exponential


@dataclass(frozen=True, slots=True)
class CallFailure(Generic[E]):
    """A creating call that did not succeed: its last error and how many attempts it took."""

    error: E
    attempts: int


@dataclass(frozen=True, slots=True)
class Retrier(Generic[E]):
    """One provider client's retried calls: the policy, the provider's error type, the counter
    its retries are measured on, and the provider's name for log events."""

    policy: RetryPolicy
    errors: type[E]
    counter: Counter
    provider: str

    async def run(
        self,
        once: Callable[[], Awaitable[T]],
        *,
        endpoint: str,
        give_up: Callable[[E], bool] | None = None,
    ) -> tuple[T | E, int]:
        """Run ``once`` under the policy: its answer, or the error that ended the call, with the
        number of attempts made. ``give_up`` vetoes a retry the table would allow, for failures
        where sending again could do harm (an unanswered POST that cannot be reconciled).

        The first attempt runs bare: nearly every call succeeds at once, and building the
        tenacity controller costs as much as the rest of the call's own code. Its failure is
        replayed as tenacity's first attempt, so waits, logs and counts are exactly as if
        tenacity had run it.
        """
        try:
            return await once(), 1
        except self.errors as error:
            first_failure: E | None = error
        attempts = 0
        try:
            async for attempt in self.controller(endpoint=endpoint, give_up=give_up):
                with attempt:
                    attempts += 1
                    if first_failure is not None:
                        replayed, first_failure = first_failure, None
                        raise replayed
                    return await once(), attempts
        except self.errors as error:  # the controller re-raises the last one when it stops
            return error, attempts
        raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover

    def controller(
        self, *, endpoint: str, give_up: Callable[[E], bool] | None = None
    ) -> AsyncRetrying:
        """A tenacity controller for one call to ``endpoint`` (a route label, for logs)."""

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, self.errors) or not self.policy.retries(exc):
                return False
            return give_up is None or not give_up(exc)

        def wait(state: RetryCallState) -> float:
            return self.policy.wait_seconds(self._failure(state), state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            error = self._failure(state)
            self.counter.labels(reason=error.code).inc()
            log.info(
                f"{self.provider}_call_retrying",
                endpoint=endpoint,
                code=error.code,
                httpStatus=error.http_status,
                attempt=state.attempt_number,
                waitSeconds=round(state.upcoming_sleep, 3),
            )

        return AsyncRetrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            retry=retry_if_exception(should_retry),
            wait=wait,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _failure(self, state: RetryCallState) -> E:
        """The error of the attempt that just failed (the retry predicate guarantees its type)."""
        error = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(error, self.errors):
            raise TypeError(f"retry state holds no {self.errors.__name__}: {error!r}")
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
