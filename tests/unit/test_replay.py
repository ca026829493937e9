"""The replay window of webhook deliveries: what a captured, validly signed body can still do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.web.replay import FUTURE_SKEW_SECONDS, dedupe_seconds, freshness_problem

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def _at(delta: timedelta) -> str:
    return (NOW + delta).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"timestamp": _at(timedelta(0))}, None),
        ({"timestamp": _at(-timedelta(minutes=59))}, None),
        ({"data": {"timestamp": _at(-timedelta(minutes=1))}}, None),
        ({"timestamp": "2026-12-03T12:00:00"}, None),  # no offset: read as UTC
        ({"timestamp": "2026-12-03T13:00:00+01:00"}, None),
        ({"timestamp": _at(-timedelta(hours=1, seconds=1))}, "STALE_DELIVERY"),
        ({"timestamp": "2020-01-01T00:00:00.000Z"}, "STALE_DELIVERY"),
        ({"timestamp": _at(timedelta(minutes=6))}, "STALE_DELIVERY"),
        ({}, None),
        ({"timestamp": 1764763200}, "INVALID_PAYLOAD"),
        ({"timestamp": "soon"}, "INVALID_PAYLOAD"),
        ({"data": "2026-12-03T12:00:00Z"}, None),
    ],
)
def test_a_delivery_is_taken_only_within_the_tolerance(
    payload: dict[str, object], code: str | None
) -> None:
    problem = freshness_problem(payload, NOW, HOUR)
    assert (problem[0] if problem else None) == code


@pytest.mark.parametrize("payload", [{}, {"timestamp": None}, {"data": {"messageId": "m-1"}}])
def test_an_undated_delivery_is_refused_only_when_a_timestamp_is_required(
    payload: dict[str, object],
) -> None:
    assert freshness_problem(payload, NOW, HOUR) is None
    problem = freshness_problem(payload, NOW, HOUR, require_timestamp=True)
    assert problem is not None and problem[0] == "INVALID_PAYLOAD"
    assert "RELAY_WEBHOOK_REQUIRE_TIMESTAMP" in problem[1]


def test_a_dated_delivery_is_judged_the_same_when_a_timestamp_is_required() -> None:
    fresh, stale = {"timestamp": _at(timedelta(0))}, {"timestamp": "2020-01-01T00:00:00Z"}
    assert freshness_problem(fresh, NOW, HOUR, require_timestamp=True) is None
    problem = freshness_problem(stale, NOW, HOUR, require_timestamp=True)
    assert problem is not None and problem[0] == "STALE_DELIVERY"


def test_the_dedupe_memory_outlasts_every_delivery_the_tolerance_lets_in() -> None:
    assert dedupe_seconds(0, HOUR) == HOUR + FUTURE_SKEW_SECONDS
    assert dedupe_seconds(10 * HOUR, HOUR) == 10 * HOUR
