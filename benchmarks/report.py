"""Figures, their verdicts against the targets, the printed table and the JSON file.

A verdict is ``pass`` or ``MISS`` against a target, ``info`` for context without a target,
``error`` when the scenario could not be measured. Misses are reported, never raised: a
benchmark on a shared machine informs, it does not gate.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from benchmarks.stats import Spread

Verdict = Literal["pass", "MISS", "info", "error"]


@dataclass(frozen=True, slots=True)
class Figure:
    scenario: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    verdict: Verdict = "info"
    low: float | None = None  # the range over rounds, when the value is their median
    high: float | None = None

    @classmethod
    def info(cls, scenario: str, name: str, value: float, unit: str = "") -> Figure:
        return cls(scenario, name, value, unit)

    @classmethod
    def at_least(
        cls, scenario: str, name: str, value: float, threshold: float, unit: str = ""
    ) -> Figure:
        target = f">= {_number(threshold)}{_suffix(unit)}"
        return cls(scenario, name, value, unit, target, "pass" if value >= threshold else "MISS")

    @classmethod
    def below(
        cls, scenario: str, name: str, value: float, threshold: float, unit: str = ""
    ) -> Figure:
        target = f"< {_number(threshold)}{_suffix(unit)}"
        return cls(scenario, name, value, unit, target, "pass" if value < threshold else "MISS")

    @classmethod
    def exactly(cls, scenario: str, name: str, value: float, wanted: float) -> Figure:
        target = f"= {_number(wanted)}"
        return cls(scenario, name, value, "", target, "pass" if value == wanted else "MISS")

    @classmethod
    def median(
        cls,
        scenario: str,
        name: str,
        spread: Spread,
        unit: str = "",
        *,
        at_least: float | None = None,
    ) -> Figure:
        """The median over rounds with its range; against ``at_least`` when there is a target."""
        if at_least is None:
            figure = cls.info(scenario, name, spread.median, unit)
        else:
            figure = cls.at_least(scenario, name, spread.median, at_least, unit)
        return replace(figure, low=spread.low, high=spread.high)

    @classmethod
    def failed(cls, scenario: str, error: BaseException) -> Figure:
        """The error in one table cell; the full story is in the progress lines above."""
        while isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        first_line = (str(error) or type(error).__name__).splitlines()[0]
        text = f"{type(error).__name__}: {first_line}"
        return cls(scenario, text if len(text) <= 70 else text[:69] + "…", None, "", "", "error")

    def shown_value(self) -> str:
        if self.value is None:
            return "-"
        shown = f"{_number(self.value)}{_suffix(self.unit)}"
        if self.low is not None and self.high is not None:
            shown += f" ({_number(self.low)}-{_number(self.high)})"
        return shown


def _suffix(unit: str) -> str:
    return f" {unit}" if unit else ""


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e9:
        return f"{int(value)}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render_table(figures: Sequence[Figure]) -> str:
    header = ("scenario", "figure", "value", "target", "verdict")
    rows = [header] + [
        (f.scenario, f.name, f.shown_value(), f.target or "-", f.verdict) for f in figures
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def write_json(
    path: Path,
    figures: Sequence[Figure],
    details: Mapping[str, Any],
    *,
    mode: str,
    seconds: float,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "duration_seconds": round(seconds, 1),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": _cpu_count(),
        },
        "figures": [asdict(figure) for figure in figures],
        "details": details,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))
