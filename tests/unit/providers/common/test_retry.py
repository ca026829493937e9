"""The shared retry module: what is retried in-process, how long it waits, and how a call is
run under the policy (the same for MsgFlash and Tether)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.contract.errors import MsgFlashError, TetherError
from service.metrics import Metrics
from service.providers.common.retry import Retrier, RetryPolicy, parse_retry_after

NOW = datetime(2026, 4, 1, 10, 0, 0, tzinfo=UTC)


def error(code: str, status: int | None, *, retry_after: float | None = None) -> MsgFlashError:
    return MsgFlashError(code, "boom", http_status=status, retry_after=retry_after)


def policy(draw: float = 1.0, **overrides: object) -> RetryPolicy:
    return RetryPolicy(jitter=lambda: draw, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("VALIDATION_ERROR", 400),
        ("UNAUTHORIZED", 401),
        ("FORBIDDEN", 403),
        ("NOT_FOUND", 404),
        ("INVALID_DESTINATION", 422),
        ("MONTHLY_OUTBOUND_QUOTA_EXCEEDED", 429),
        ("MONTHLY_API_REQUEST_QUOTA_EXCEEDED", 429),
        ("MSGFLASH_BAD_RESPONSE", 201),
    ],
)
def test_permanent_and_quota_failures_are_not_retried(code: str, status: int) -> None:
    failure = error(code, status)
    assert not RetryPolicy().retries(failure)
    assert RetryPolicy().wait_seconds(failure, 1) == 0.0


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("API_RATE_LIMIT_EXCEEDED", 429),
        ("HTTP_429", 429),
        ("INTERNAL_ERROR", 500),
        ("HTTP_503", 503),
        ("PROVIDER_TIMEOUT", 502),
        ("MSGFLASH_TIMEOUT", None),
        ("MSGFLASH_UNREACHABLE", None),
    ],
)
def test_rate_limits_and_transient_failures_are_retried(code: str, status: int | None) -> None:
    assert RetryPolicy().retries(error(code, status))


def test_transient_wait_doubles_from_its_initial_value_up_to_its_max() -> None:
    waits = [
        policy(transient=(0.5, 8.0)).wait_seconds(error("HTTP_503", 503), n) for n in range(1, 8)
    ]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_rate_limited_wait_uses_its_own_window() -> None:
    waits = [
        policy(rate_limited=(0.25, 1.0)).wait_seconds(error("API_RATE_LIMIT_EXCEEDED", 429), n)
        for n in range(1, 5)
    ]
    assert waits == [0.25, 0.5, 1.0, 1.0]


def test_wait_is_a_full_jitter_draw_below_the_exponential_ceiling() -> None:
    failure = error("HTTP_503", 503)
    assert policy(0.0).wait_seconds(failure, 3) == 0.0
    assert policy(0.5).wait_seconds(failure, 3) == pytest.approx(1.0)


@given(attempt=st.integers(min_value=1, max_value=200), draw=st.floats(0.0, 1.0, exclude_max=True))
def test_every_computed_wait_stays_within_the_window(attempt: int, draw: float) -> None:
    wait = policy(draw).wait_seconds(error("INTERNAL_ERROR", 500), attempt)
    assert 0.0 <= wait <= 8.0


def test_retry_after_replaces_the_computed_wait_without_jitter() -> None:
    failure = error("API_RATE_LIMIT_EXCEEDED", 429, retry_after=7.0)
    assert policy(0.0).wait_seconds(failure, 1) == 7.0


def test_retry_after_is_capped_by_max_retry_after() -> None:
    failure = error("HTTP_503", 503, retry_after=3600.0)
    assert policy(max_retry_after=30.0).wait_seconds(failure, 1) == 30.0


def test_retry_after_does_not_make_a_quota_error_retryable() -> None:
    failure = error("MONTHLY_OUTBOUND_QUOTA_EXCEEDED", 429, retry_after=5.0)
    assert not RetryPolicy().retries(failure)


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_attempts": 0},
        {"transient": (2.0, 1.0)},
        {"rate_limited": (-1.0, 1.0)},
        {"max_retry_after": -1.0},
    ],
)
def test_an_impossible_policy_is_refused_with_the_field_named(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(overrides))):
        RetryPolicy(**overrides)  # type: ignore[arg-type]


def test_retry_after_delta_seconds_are_read_as_seconds() -> None:
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after(" 0 ", now=NOW) == 0.0


def test_retry_after_http_date_is_read_relative_to_now() -> None:
    assert parse_retry_after("Wed, 01 Apr 2026 10:00:30 GMT", now=NOW) == 30.0


def test_retry_after_in_the_past_means_no_wait() -> None:
    past = (NOW - timedelta(minutes=5)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(past, now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3", "Someday, 99 Foo 2026"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def msgflash_retrier(metrics: Metrics, **overrides: object) -> Retrier[MsgFlashError]:
    return Retrier(policy(0.0, **overrides), MsgFlashError, metrics.retries, "msgflash")


class Attempts:
    """A call that fails with each of ``errors`` in turn, then answers ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_a_first_success_is_one_attempt() -> None:
    call = Attempts()
    assert await msgflash_retrier(Metrics()).run(call, endpoint="GET /x") == ("ok", 1)


async def test_a_retried_success_counts_every_attempt_and_each_retry_by_code() -> None:
    metrics = Metrics()
    call = Attempts(error("HTTP_503", 503), error("HTTP_503", 503))
    assert await msgflash_retrier(metrics).run(call, endpoint="GET /x") == ("ok", 3)
    assert (
        metrics.registry.get_sample_value("relay_msgflash_retries_total", {"reason": "HTTP_503"})
        == 2.0
    )


async def test_the_call_stops_after_max_attempts_and_returns_its_last_error() -> None:
    call = Attempts(*(error("HTTP_503", 503) for _ in range(5)))
    answer, attempts = await msgflash_retrier(Metrics(), max_attempts=3).run(
        call, endpoint="GET /x"
    )
    assert isinstance(answer, MsgFlashError) and answer.code == "HTTP_503"
    assert (call.calls, attempts) == (3, 3)


async def test_a_permanent_error_ends_the_call_after_one_attempt() -> None:
    call = Attempts(error("VALIDATION_ERROR", 400))
    answer, attempts = await msgflash_retrier(Metrics()).run(call, endpoint="GET /x")
    assert isinstance(answer, MsgFlashError) and (call.calls, attempts) == (1, 1)


async def test_give_up_vetoes_a_retry_the_table_would_allow() -> None:
    call = Attempts(error("MSGFLASH_TIMEOUT", None))
    answer, attempts = await msgflash_retrier(Metrics()).run(
        call, endpoint="POST /x", give_up=lambda e: e.code == "MSGFLASH_TIMEOUT"
    )
    assert isinstance(answer, MsgFlashError) and (call.calls, attempts) == (1, 1)


async def test_errors_of_another_type_are_raised_not_retried() -> None:
    call = Attempts(KeyError("bug"))
    with pytest.raises(KeyError):
        await msgflash_retrier(Metrics()).run(call, endpoint="GET /x")
    assert call.calls == 1


async def test_a_tether_retrier_retries_tether_errors_on_its_own_counter() -> None:
    metrics = Metrics()
    retrier = Retrier(policy(0.0), TetherError, metrics.tether_retries, "tether")
    call = Attempts(TetherError("HTTP_503", "down", http_status=503))
    assert await retrier.run(call, endpoint="POST /api/campaigns") == ("ok", 2)
    assert (
        metrics.registry.get_sample_value("relay_tether_retries_total", {"reason": "HTTP_503"})
        == 1.0
    )
    assert (
        metrics.registry.get_sample_value("relay_msgflash_retries_total", {"reason": "HTTP_503"})
        is None
    )
