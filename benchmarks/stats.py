"""Summaries of repeated measurements: percentiles, and the median with its range. Pure."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not ordered:
        raise ValueError("no values")
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats creeping in
    return ordered[int(rank) - 1]


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of a few rounds and the lowest and highest of them."""

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no rounds to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Round-by-round ratios: each pair was measured side by side, so the machine's drift
    between rounds cancels out of each ratio (it would not out of a ratio of medians)."""
    if len(numerators) != len(denominators):
        raise ValueError("ratios need the same number of rounds on both sides")
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def rotated(items: Sequence[str], round_index: int) -> list[str]:
    """The running order of one round: each program goes first in turn, so none is always
    measured right after the same neighbour or at the same point of the machine's load."""
    shift = round_index % len(items) if items else 0
    return list(items[shift:]) + list(items[:shift])


def busiest_window(times: Sequence[float], width: float) -> int:
    """Most of the sorted ``times`` inside any half-open window ``[t, t + width)`` (two
    pointers): what a sliding-window rate limiter of that width counts at its worst."""
    busiest, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= width:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest
