"""Scenario 5: what 429s cost. 1,000 commands with 20 % of the sandbox's answers forced to 429,
against the same 1,000 with none: completion time ratio and attempts per command.

The relay runs with its defaults (5 in-process attempts with jittered backoff, then the 10 s
retry tier), so a command unlucky five times in a row comes back after 10 s and shows in the
completion time; the count of such deferrals is reported next to it. The fault sequence is
seeded, so a rerun draws the same 429s in the same request order.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.bus import ResultTap, attempts_of, publish_commands, wait_for_consumer
from benchmarks.drain import UNPACED_RATE
from benchmarks.processes import RelayProcess, free_port, metric_total, relay_env
from benchmarks.report import Figure
from benchmarks.session import BenchSession

SCENARIO = "backoff"
FORCED_429_RATE = 0.2
FAULT_SEED = 20240601


@dataclass(frozen=True, slots=True)
class BatchRun:
    commands: int
    seconds: float  # first publish -> last result event
    mean_attempts: float
    max_attempts: int
    forced_429s: int
    deferred: int
    failed: int


async def run(session: BenchSession) -> list[Figure]:
    count = session.sizes.backoff_commands
    clean = await timed_batch(session, count, faults=None)
    session.progress(SCENARIO, f"clean: {count} commands in {clean.seconds:.1f} s")
    faults = {"force_429_rate": FORCED_429_RATE, "random_seed": FAULT_SEED}
    faulted = await timed_batch(session, count, faults=faults)
    session.progress(SCENARIO, f"20 % 429s: {count} commands in {faulted.seconds:.1f} s")
    session.details[SCENARIO] = {"clean": asdict(clean), "forced_429": asdict(faulted)}
    ideal = 1 / (1 - FORCED_429_RATE)
    return [
        Figure.info(SCENARIO, f"clean, N={count}", clean.seconds, "s"),
        Figure.info(SCENARIO, "20 % 429s", faulted.seconds, "s"),
        Figure.info(SCENARIO, "completion time, 429s / clean", faulted.seconds / clean.seconds),
        Figure.info(SCENARIO, f"attempts per command (ideal {ideal:.2f})", faulted.mean_attempts),
        Figure.info(SCENARIO, "most attempts for one command", faulted.max_attempts),
        Figure.info(SCENARIO, "429s answered", faulted.forced_429s),
        Figure.info(SCENARIO, "deferred to the retry tier", faulted.deferred),
        Figure.info(SCENARIO, "failed commands", faulted.failed),
    ]


async def timed_batch(
    session: BenchSession, count: int, *, faults: dict[str, Any] | None
) -> BatchRun:
    workspace, sandbox = session.workspace, await session.sandbox()
    await sandbox.reset()
    if faults is not None:
        await sandbox.admin("PUT", "/_sandbox/faults", faults)
    topology = workspace.topology("backoff" if faults else "clean")
    relay = RelayProcess.create(
        topology.prefix,
        relay_env(
            workspace,
            topology,
            sandbox,
            http_port=free_port(),
            state_url=workspace.sqlite_state_url(topology.prefix),
            rate_limit=UNPACED_RATE,
        ),
        workspace.path(f"{topology.prefix}.log"),
    )
    connection = await workspace.connect()
    try:
        tap = await ResultTap.declare(connection, workspace, topology)
        await relay.start()
        await relay.wait_ready()
        await wait_for_consumer(connection, topology.messages_queue)
        started = time.perf_counter()
        await publish_commands(connection, topology, count)
        arrivals = await tap.wait_for(count, timeout=300, alive=relay.child.ensure_running)
        metrics = await relay.metrics()
        events = await tap.read(count)
        await tap.close()
    finally:
        await relay.stop()
        await connection.close()
    await sandbox.admin("DELETE", "/_sandbox/faults")
    attempts = attempts_of(events)
    return BatchRun(
        commands=count,
        seconds=arrivals.last_at - started,
        mean_attempts=statistics.fmean(attempts),
        max_attempts=max(attempts),
        forced_429s=round(metric_total(metrics, "relay_msgflash_requests_total", status="429")),
        deferred=round(metric_total(metrics, "relay_deferred_total")),
        failed=sum(1 for event in events if event.get("type") == "msgflash.message.failed"),
    )
