"""Figures over rounds: the median shown with its range, and its verdict against a target."""

from __future__ import annotations

from benchmarks.report import Figure
from benchmarks.stats import Spread


def test_a_median_figure_shows_its_range() -> None:
    figure = Figure.median("throughput", "relay", Spread.of([900.0, 1000.0, 1200.0]), "events/s")
    assert figure.shown_value() == "1000 events/s (900-1200)"
    assert figure.verdict == "info"


def test_a_median_against_a_target_is_judged_by_the_median_alone() -> None:
    spread = Spread.of([0.5, 0.72, 0.9])
    assert Figure.median("throughput", "ratio", spread, at_least=0.7).verdict == "pass"
    assert Figure.median("throughput", "ratio", spread, at_least=0.8).verdict == "MISS"
