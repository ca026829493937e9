"""The throughput table from interleaved rounds: medians, ranges and paired ratios."""

from __future__ import annotations

from benchmarks.drain import DrainRun, Program
from benchmarks.throughput import PROGRAMS, figures


def drained(program: Program, rate: float, cpu_ms: float) -> DrainRun:
    return DrainRun(
        program=program,
        commands=1000,
        seconds=1000 / rate,
        events_per_second=rate,
        startup_seconds=0.5,
        peak_rss_mb=80.0,
        cpu_ms_per_command=cpu_ms,
        cpu_share=rate * cpu_ms / 1000,
        upstream_cpu_ms_per_command=0.02,
        broker_cpu_ms_per_command=0.3,
        machine_busy_share=0.9,
    )


def rounds(rates: dict[Program, list[float]]) -> dict[Program, list[DrainRun]]:
    return {p: [drained(p, rate, 0.5) for rate in rates[p]] for p in PROGRAMS}


def by_name(rates: dict[Program, list[float]]) -> dict[str, str]:
    return {f.name: f"{f.shown_value()} {f.verdict}" for f in figures(1000, rounds(rates))}


def test_ratios_are_paired_round_by_round_and_judged_against_the_targets() -> None:
    table = by_name(
        {
            "relay": [800.0, 1600.0, 400.0],
            "relay-memory": [1000.0, 1000.0, 1000.0],
            "bare": [1000.0, 2000.0, 500.0],  # the machine halved its speed in round 3
            "faststream": [400.0, 800.0, 200.0],
            "bare-batched": [1600.0, 3200.0, 800.0],
        }
    )
    assert table["relay / bare loop"] == "0.80 (0.80-0.80) pass"
    assert table["relay / FastStream"] == "2 (2-2) pass"
    assert table["relay / bare loop with batched acks"] == "0.50 (0.50-0.50) info"
    assert table["relay, N=1000 x 3"] == "800 events/s (400-1600) info"


def test_a_relay_slower_than_the_targets_misses_them() -> None:
    same = [1000.0, 1000.0, 1000.0]
    table = by_name({p: same for p in PROGRAMS})
    assert table["relay / bare loop"] == "1 (1-1) pass"
    assert table["relay / FastStream"] == "1 (1-1) MISS"
