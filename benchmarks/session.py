"""One invocation of the harness: its sizes, its workspace, the shared sandbox, reusable runs.

Scenarios share what they can: the 20,000-command throughput run is also the memory figure at
that size, and the latency run paces itself at half the throughput already measured.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from benchmarks.drain import DrainRun, Program, drain_preloaded
from benchmarks.processes import Sandbox
from benchmarks.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each scenario does; ``quick`` is for developing the harness itself."""

    throughput_commands: int
    memory_commands: tuple[int, ...]
    latency_seconds: float
    pacing_commands: int
    backoff_commands: int
    crash_commands: int
    fairness_backlog: int
    fairness_seconds: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            throughput_commands=20_000,
            memory_commands=(5_000, 20_000, 50_000),
            latency_seconds=15.0,
            pacing_commands=600,
            backoff_commands=1_000,
            crash_commands=300,
            fairness_backlog=5_000,
            fairness_seconds=20.0,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            throughput_commands=2_000,
            memory_commands=(1_000, 2_000, 5_000),
            latency_seconds=5.0,
            pacing_commands=100,
            backoff_commands=200,
            crash_commands=100,
            fairness_backlog=1_000,
            fairness_seconds=6.0,
        )


@dataclass
class BenchSession:
    sizes: Sizes
    workspace: Workspace
    details: dict[str, Any] = field(default_factory=dict)
    _sandbox: Sandbox | None = None
    _drains: dict[tuple[Program, int], DrainRun] = field(default_factory=dict)

    async def sandbox(self) -> Sandbox:
        """The sandbox with its limits off (plan ``unlimited``), started on first use."""
        if self._sandbox is None:
            self._sandbox = await Sandbox.start(
                self.workspace, "sandbox-unlimited", rate_limit=None, request_log_limit=5_000
            )
        return self._sandbox

    async def drain(self, program: Program, count: int) -> DrainRun:
        """``program`` draining ``count`` preloaded commands: measured once per session."""
        key = (program, count)
        if key not in self._drains:
            self.progress("drain", f"{program}: {count} preloaded commands")
            run = await drain_preloaded(self.workspace, await self.sandbox(), program, count)
            self.progress(
                "drain",
                f"{program}: {run.events_per_second:.0f} events/s, "
                f"{run.cpu_ms_per_command:.2f} ms CPU per command, "
                f"peak RSS {run.peak_rss_mb:.0f} MB",
            )
            self._drains[key] = run
        return self._drains[key]

    def progress(self, scenario: str, text: str) -> None:
        print(f"[{scenario}] {text}", file=sys.stderr, flush=True)

    async def close(self) -> None:
        try:
            if self._sandbox is not None:
                await self._sandbox.stop()
        finally:
            await self.workspace.close()
