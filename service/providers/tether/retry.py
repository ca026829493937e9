"""In-process retries of Tether calls: which failures to retry and how long to wait.

The same table as every provider's (``service.contract.errors.classify``): 5xx, timeouts and
connection errors are transient, 429 is rate limiting, the rest is final. Waits are exponential
with full jitter; a ``Retry-After`` replaces the computed wait, capped.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from service.contract.errors import RetryClass, TetherError
from service.metrics import Metrics

log = structlog.get_logger("service.providers.tether.retry")


def never(_error: TetherError) -> bool:
    return False


@dataclass(frozen=True)
class TetherRetry:
    max_attempts: int = 5
    rate_limited: tuple[float, float] = (0.25, 4.0)
    transient: tuple[float, float] = (0.5, 8.0)
    max_retry_after: float = 30.0
    jitter: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"TetherRetry.max_attempts must be at least 1 (RELAY_RETRY_MAX_ATTEMPTS), "
                f"got {self.max_attempts}"
            )

    def window(self, error: TetherError) -> tuple[float, float] | None:
        """Backoff window of a failure; None when retrying in-process cannot help."""
        return {
            RetryClass.RATE_LIMITED: self.rate_limited,
            RetryClass.TRANSIENT: self.transient,
        }.get(error.retry_class)

    def wait_seconds(self, error: TetherError, attempt: int) -> float:
        window = self.window(error)
        if window is None:
            return 0.0
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        initial, ceiling = window
        return self.jitter() * min(ceiling, initial * 2.0 ** max(attempt - 1, 0))

    def retrying(
        self,
        metrics: Metrics,
        *,
        endpoint: str,
        give_up: Callable[[TetherError], bool] = never,
    ) -> AsyncRetrying:
        """A tenacity controller for one call; ``give_up`` vetoes a retry that could do harm."""

        def should_retry(exc: BaseException) -> bool:
            return (
                isinstance(exc, TetherError) and self.window(exc) is not None and not give_up(exc)
            )

        def wait(state: RetryCallState) -> float:
            return self.wait_seconds(_failure(state), state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            error = _failure(state)
            metrics.tether_retries.labels(reason=error.code).inc()
            log.info(
                "tether_call_retrying",
                endpoint=endpoint,
                code=error.code,
                http_status=error.http_status,
                attempt=state.attempt_number,
                wait_seconds=round(state.upcoming_sleep, 3),
            )

        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            retry=retry_if_exception(should_retry),
            wait=wait,
            before_sleep=before_sleep,
            reraise=True,
        )


def _failure(state: RetryCallState) -> TetherError:
    error = state.outcome.exception() if state.outcome is not None else None
    if not isinstance(error, TetherError):
        raise TypeError(f"retry state holds no TetherError: {error!r}")
    return error
