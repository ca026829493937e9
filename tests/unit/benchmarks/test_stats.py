"""The harness's statistics: medians with ranges, round-by-round ratios, the running order."""

from __future__ import annotations

import pytest

from benchmarks.stats import Spread, percentile, ratios, rotated


def test_a_spread_is_the_median_with_the_lowest_and_highest_round() -> None:
    assert Spread.of([3.0, 1.0, 2.0]) == Spread(median=2.0, low=1.0, high=3.0, rounds=3)


def test_an_even_number_of_rounds_takes_the_middle_two_s_mean() -> None:
    assert Spread.of([1.0, 2.0, 4.0, 10.0]).median == 3.0


def test_no_rounds_cannot_be_summarised() -> None:
    with pytest.raises(ValueError):
        Spread.of([])


def test_ratios_pair_the_rounds_in_order() -> None:
    assert ratios([10.0, 30.0], [20.0, 30.0]) == [0.5, 1.0]


def test_ratios_refuse_unpaired_rounds() -> None:
    with pytest.raises(ValueError):
        ratios([1.0, 2.0], [1.0])


def test_the_median_of_ratios_is_not_the_ratio_of_medians() -> None:
    # A machine that slowed down between rounds: each ratio stays 0.5, the medians' does not.
    relay, bare = [50.0, 100.0, 20.0], [100.0, 200.0, 40.0]
    assert Spread.of(ratios(relay, bare)).median == 0.5


@pytest.mark.parametrize(
    ("round_index", "order"),
    [(0, ["a", "b", "c"]), (1, ["b", "c", "a"]), (2, ["c", "a", "b"]), (3, ["a", "b", "c"])],
)
def test_each_program_goes_first_in_turn(round_index: int, order: list[str]) -> None:
    assert rotated(("a", "b", "c"), round_index) == order


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
