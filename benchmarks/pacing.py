"""Scenario 4: pacing accuracy against a sandbox that enforces 10 requests/s per API key.

600 commands through one relay (local limiter, SQLite state), and 600 through three relays
sharing Redis (one limiter for the key across processes). The achieved rate and the
``API_RATE_LIMIT_EXCEEDED`` answers come from the sandbox's request log. Targets: >= 9.5
requests/s and no rate-limit 429 in both. The relays are started and ready before the
commands are published, so the rate is the steady one. Both variants run at the same time,
each against its own sandbox: at 10 requests/s they barely use the CPU, and it saves a minute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.bus import ResultTap, publish_commands, wait_for_consumer
from benchmarks.processes import RelayProcess, Sandbox, free_port, relay_env
from benchmarks.report import Figure
from benchmarks.session import BenchSession

SCENARIO = "pacing"
SANDBOX_LIMIT = 10.0
RELAY_LIMIT = 10.0
TARGET_RATE = 9.5
RATE_LIMITED = "API_RATE_LIMIT_EXCEEDED"


@dataclass(frozen=True, slots=True)
class PacingRun:
    relays: int
    requests: int
    requests_per_second: float
    rate_limited: int
    busiest_second: int  # most requests the sandbox saw in any sliding 1-second window
    failed_results: int
    seconds: float  # first publish -> last result event


async def run(session: BenchSession) -> list[Figure]:
    count = session.sizes.pacing_commands
    session.progress(SCENARIO, f"{count} commands at {RELAY_LIMIT:g}/s, 1 relay and 3 relays")
    async with asyncio.TaskGroup() as group:  # one failing stops the other, nothing leaks
        one = group.create_task(paced_run(session, relays=1, count=count))
        three = group.create_task(paced_run(session, relays=3, count=count))
    single, shared = one.result(), three.result()
    session.details[SCENARIO] = {"one_relay": asdict(single), "three_relays": asdict(shared)}
    figures: list[Figure] = []
    for label, result in (("1 relay", single), ("3 relays, Redis", shared)):
        figures += [
            Figure.at_least(
                SCENARIO, f"{label}: rate", result.requests_per_second, TARGET_RATE, "req/s"
            ),
            Figure.exactly(SCENARIO, f"{label}: {RATE_LIMITED}", result.rate_limited, 0),
            Figure.info(SCENARIO, f"{label}: busiest 1-s window", result.busiest_second, "req"),
        ]
    return figures


async def paced_run(session: BenchSession, *, relays: int, count: int) -> PacingRun:
    workspace = session.workspace
    label = f"paced-{relays}"
    sandbox = await Sandbox.start(
        workspace, f"sandbox-{label}", rate_limit=SANDBOX_LIMIT, request_log_limit=10 * count
    )
    try:
        return await _through_relays(session, sandbox, label, relays=relays, count=count)
    finally:
        await sandbox.stop()


async def _through_relays(
    session: BenchSession, sandbox: Sandbox, label: str, *, relays: int, count: int
) -> PacingRun:
    workspace = session.workspace
    topology = workspace.topology(label)
    state_url = (
        workspace.redis_state_url(topology)
        if relays > 1
        else workspace.sqlite_state_url(topology.prefix)
    )
    processes = [
        RelayProcess.create(
            f"{topology.prefix}-{index}",
            relay_env(
                workspace,
                topology,
                sandbox,
                http_port=free_port(),
                state_url=state_url,
                rate_limit=RELAY_LIMIT,
            ),
            workspace.path(f"{topology.prefix}-{index}.log"),
        )
        for index in range(relays)
    ]

    def alive() -> None:
        for relay in processes:
            relay.child.ensure_running()

    connection = await workspace.connect()
    try:
        tap = await ResultTap.declare(connection, workspace, topology)
        await asyncio.gather(*(relay.start() for relay in processes))
        await asyncio.gather(*(relay.wait_ready() for relay in processes))
        await wait_for_consumer(connection, topology.messages_queue, alive=alive)
        started = time.perf_counter()
        await publish_commands(connection, topology, count)
        arrivals = await tap.wait_for(count, timeout=60 + 2 * count / TARGET_RATE, alive=alive)
        events = await tap.read(count)
        log = await sandbox.requests()
        await tap.close()
    finally:
        await asyncio.gather(*(relay.stop() for relay in processes))
        await connection.close()
    return summarize(
        log,
        relays=relays,
        failed=sum(1 for e in events if e.get("type") == "msgflash.message.failed"),
        seconds=arrivals.last_at - started,
    )


def summarize(
    log: Sequence[dict[str, Any]], *, relays: int, failed: int, seconds: float
) -> PacingRun:
    """Rate over the sandbox's log: requests after the first, over the time they spanned."""
    times = sorted(float(entry["at"]) for entry in log)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return PacingRun(
        relays=relays,
        requests=len(times),
        requests_per_second=(len(times) - 1) / span if span > 0 else 0.0,
        rate_limited=sum(1 for entry in log if entry.get("code") == RATE_LIMITED),
        busiest_second=busiest_window(times, 1.0),
        failed_results=failed,
        seconds=seconds,
    )


def busiest_window(times: Sequence[float], width: float) -> int:
    """Most timestamps inside any half-open window ``[t, t + width)`` (two pointers)."""
    busiest, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= width:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest
