"""Scenario 3: peak RSS of the relay process while it drains N queued commands, for several N.

Target: under 150 MB at every N, and flat in N: the peak at the largest N may exceed the
peak at the smallest by at most FLAT_TOLERANCE (a bounded cache may fill, nothing may grow
with the queue).
"""

from __future__ import annotations

from benchmarks.report import Figure
from benchmarks.session import BenchSession

SCENARIO = "memory"
LIMIT_MB = 150.0
FLAT_TOLERANCE = 0.10


async def run(session: BenchSession) -> list[Figure]:
    counts = session.sizes.memory_commands
    runs = [await session.drain("relay", count) for count in counts]
    session.details[SCENARIO] = {
        str(run.commands): {
            "peak_rss_mb": run.peak_rss_mb,
            "events_per_second": run.events_per_second,
        }
        for run in runs
    }
    figures = [
        Figure.below(SCENARIO, f"relay peak RSS, N={run.commands}", run.peak_rss_mb, LIMIT_MB, "MB")
        for run in runs
    ]
    smallest, largest = runs[0], runs[-1]
    growth = (largest.peak_rss_mb - smallest.peak_rss_mb) / smallest.peak_rss_mb
    figures.append(
        Figure.below(
            SCENARIO,
            f"peak growth N={smallest.commands} -> {largest.commands}",
            100 * growth,
            100 * FLAT_TOLERANCE,
            "%",
        )
    )
    return figures
