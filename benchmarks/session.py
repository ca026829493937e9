"""One invocation of the harness: its sizes, its workspace, the shared sandbox, reusable runs.

Scenarios share what they can: the memory scenario's drains are cached per size, and the
latency and webhook runs pace themselves at half the rates already measured. Throughput and
latency call the minimal responder as MsgFlash; the behaviour scenarios (pacing, backoff,
crash) call the sandbox.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from benchmarks.drain import DrainRun, Program, drain_preloaded
from benchmarks.processes import Responder, Sandbox
from benchmarks.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each scenario does; ``quick`` is for developing the harness itself."""

    throughput_commands: int  # per program and round
    throughput_rounds: int
    memory_commands: tuple[int, ...]
    latency_seconds: float
    pacing_commands: int
    pacing_account_commands: int  # per account, in the aggregate variant
    backoff_commands: int
    crash_commands: int
    webhook_requests: int  # per intake and round, at full speed
    webhook_seconds: float  # at the steady rate
    fairness_backlog: int
    fairness_seconds: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            throughput_commands=4_000,
            throughput_rounds=3,
            memory_commands=(5_000, 10_000, 20_000),
            latency_seconds=10.0,
            pacing_commands=600,
            pacing_account_commands=300,
            backoff_commands=1_000,
            crash_commands=300,
            webhook_requests=4_000,
            webhook_seconds=10.0,
            fairness_backlog=5_000,
            fairness_seconds=20.0,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            throughput_commands=1_000,
            throughput_rounds=3,
            memory_commands=(1_000, 2_000, 5_000),
            latency_seconds=5.0,
            pacing_commands=100,
            pacing_account_commands=60,
            backoff_commands=200,
            crash_commands=100,
            webhook_requests=600,
            webhook_seconds=3.0,
            fairness_backlog=1_000,
            fairness_seconds=6.0,
        )


@dataclass
class BenchSession:
    sizes: Sizes
    workspace: Workspace
    details: dict[str, Any] = field(default_factory=dict)
    _sandbox: Sandbox | None = None
    _responder: Responder | None = None
    # The relay's median drain rate, once the throughput rounds measured it.
    relay_events_per_second: float | None = None
    _drains: dict[tuple[Program, int], DrainRun] = field(default_factory=dict)

    async def sandbox(self) -> Sandbox:
        """The sandbox with its limits off (plan ``unlimited``), started on first use."""
        if self._sandbox is None:
            self._sandbox = await Sandbox.start(
                self.workspace, "sandbox-unlimited", rate_limit=None, request_log_limit=5_000
            )
        return self._sandbox

    async def responder(self) -> Responder:
        """The minimal MsgFlash upstream of the throughput and latency runs."""
        if self._responder is None:
            self._responder = await Responder.start(self.workspace)
        return self._responder

    async def drain(self, program: Program, count: int) -> DrainRun:
        """``program`` draining ``count`` preloaded commands: measured once per session."""
        key = (program, count)
        if key not in self._drains:
            self._drains[key] = await self.drain_again(program, count)
        return self._drains[key]

    async def drain_again(self, program: Program, count: int) -> DrainRun:
        """A fresh drain, never cached: for rounds."""
        self.progress("drain", f"{program}: {count} preloaded commands")
        run = await drain_preloaded(self.workspace, await self.responder(), program, count)
        self.progress(
            "drain",
            f"{program}: {run.events_per_second:.0f} events/s, "
            f"{run.cpu_ms_per_command:.2f} ms CPU per command, "
            f"peak RSS {run.peak_rss_mb:.0f} MB",
        )
        return run

    async def relay_rate(self) -> float:
        """The relay's drain rate: the throughput rounds' median, or one drain of its own."""
        if self.relay_events_per_second is None:
            run = await self.drain("relay", self.sizes.throughput_commands)
            self.relay_events_per_second = run.events_per_second
        return self.relay_events_per_second

    def progress(self, scenario: str, text: str) -> None:
        print(f"[{scenario}] {text}", file=sys.stderr, flush=True)

    async def close(self) -> None:
        try:
            if self._sandbox is not None:
                await self._sandbox.stop()
            if self._responder is not None:
                await self._responder.stop()
        finally:
            await self.workspace.close()
