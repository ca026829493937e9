"""The aggregate pacing variant's pure parts: its accounts, their file, and the rates read back
from a sandbox request log."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.aggregate import (
    RATE_LIMITED,
    accounts_file,
    bench_accounts,
    summarize_accounts,
)
from benchmarks.stats import busiest_window
from service.accounts import parse_accounts
from service.settings import load_settings


def test_the_accounts_keys_differ_in_what_the_request_log_keeps() -> None:
    accounts = bench_accounts(50)
    assert len({a.key_suffix for a in accounts}) == 50
    assert len({a.name for a in accounts}) == 50


def test_the_accounts_file_is_read_by_the_relay_with_each_key_from_its_variable() -> None:
    accounts = bench_accounts(3)
    env = {a.key_env: a.api_key for a in accounts}
    settings = load_settings({"RELAY_SANDBOX": "1"})

    parsed = parse_accounts(
        accounts_file(accounts, 10.0), source="bench", settings=settings, env=env
    )

    assert {name: (a.api_key, a.rate_limit) for name, a in parsed.msgflash.items()} == {
        a.name: (a.api_key, 10.0) for a in accounts
    }


def _entries(key: str, times: list[float], code: str | None = None) -> list[dict[str, Any]]:
    return [{"key": key, "at": at, "code": code} for at in times]


def test_rates_are_per_account_and_the_aggregate_only_counts_the_steady_window() -> None:
    fast = [i * 0.125 for i in range(81)]  # 8/s from 0 to 10 s
    late = [2 + i * 0.25 for i in range(25)]  # 4/s from 2 to 8 s: the steady window
    log = [*_entries("aaaaaa", fast), *_entries("bbbbbb", late)]

    summary = summarize_accounts(log, {"aaaaaa": "one", "bbbbbb": "two"})

    assert summary["requests"] == 106
    assert summary["steady_seconds"] == pytest.approx(6.0)
    assert summary["aggregate_per_second"] == pytest.approx((48 + 24) / 6.0)
    assert summary["min_account_per_second"] == pytest.approx(4.0)
    assert summary["slowest_account"] == "two"
    assert summary["median_account_per_second"] == pytest.approx(6.0)
    assert summary["busiest_second"] == 8


def test_refused_requests_are_counted_apart_and_do_not_make_a_rate() -> None:
    accepted = _entries("aaaaaa", [0.0, 1.0, 2.0])
    refused = _entries("aaaaaa", [0.5, 1.5], code=RATE_LIMITED)

    summary = summarize_accounts([*accepted, *refused], {"aaaaaa": "one"})

    assert (summary["requests"], summary["rate_limited"]) == (3, 2)
    assert summary["min_account_per_second"] == pytest.approx(1.0)


def test_requests_of_keys_outside_the_benchmark_are_left_out() -> None:
    log = [*_entries("aaaaaa", [0.0, 1.0]), *_entries("zzzzzz", [0.1, 0.2, 0.3])]

    summary = summarize_accounts(log, {"aaaaaa": "one"})

    assert summary["busiest_second"] == 1
    assert summary["aggregate_per_second"] == pytest.approx(1.0)


def test_the_busiest_window_is_half_open() -> None:
    assert busiest_window([0.0, 0.5, 1.0, 1.2], 1.0) == 3
    assert busiest_window([0.0, 0.999, 1.0], 1.0) == 2
    assert busiest_window([], 1.0) == 0
