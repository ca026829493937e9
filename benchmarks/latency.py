"""Scenario 2: latency at a steady 50 % of the relay's measured maximum rate.

From a command's publish to its result event on the bus: p50, p95, p99, for the relay and, at
the same rate, for the bare loop; and the upstream's own response time at that rate, from a
direct aiohttp loop. The upstream is the minimal responder (``benchmarks.responder``), so the
figures are the programs' own. Target: the relay's p99 exceeds the responder's own p99 by
under 50 ms.
Commands published in the first second are left out (connections and caches warming up).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import aiohttp

from benchmarks.baseline import SCHEDULE_PATH, to_payload
from benchmarks.bus import (
    ResultTap,
    far_future,
    publish_steadily,
    schedule_command,
    wait_for_consumer,
)
from benchmarks.drain import UNPACED_RATE, Program
from benchmarks.processes import (
    ChildProcess,
    RelayProcess,
    baseline_process,
    free_port,
    metric_total,
    relay_env,
)
from benchmarks.report import Figure
from benchmarks.session import BenchSession
from benchmarks.stats import percentile
from service.settings import DEFAULT_SANDBOX_API_KEY

SCENARIO = "latency"
LOAD_FACTOR = 0.5
WARM_UP_SECONDS = 1.0
TARGET_ADDED_P99_MS = 50.0
SCHEDULE_ENDPOINT = "POST /api/v1/messages/schedule"


@dataclass(frozen=True, slots=True)
class Latencies:
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latencies:
        ordered = sorted(seconds)
        if not ordered:
            raise ValueError("no latency samples: was the run shorter than the warm-up?")
        return cls(
            samples=len(ordered),
            p50_ms=1000 * percentile(ordered, 50),
            p95_ms=1000 * percentile(ordered, 95),
            p99_ms=1000 * percentile(ordered, 99),
            max_ms=1000 * ordered[-1],
        )


async def run(session: BenchSession) -> list[Figure]:
    rate = LOAD_FACTOR * await session.relay_rate()
    seconds = session.sizes.latency_seconds
    session.progress(SCENARIO, f"steady {rate:.0f} commands/s for {seconds:g} s each")
    relay, sandbox_seen_by_relay = await through_bus(session, "relay", rate, seconds)
    baseline, _ = await through_bus(session, "bare", rate, seconds)
    direct = await upstream_direct(session, rate, seconds)
    session.details[SCENARIO] = {
        "rate_per_second": rate,
        "relay": asdict(relay),
        "baseline": asdict(baseline),
        "responder_direct": asdict(direct),
        "responder_mean_ms_seen_by_relay": sandbox_seen_by_relay,
    }
    added = relay.p99_ms - direct.p99_ms
    return [
        Figure.info(SCENARIO, "steady rate (50 % of relay max)", rate, "commands/s"),
        Figure.info(SCENARIO, "relay p50", relay.p50_ms, "ms"),
        Figure.info(SCENARIO, "relay p95", relay.p95_ms, "ms"),
        Figure.info(SCENARIO, "relay p99", relay.p99_ms, "ms"),
        Figure.info(SCENARIO, "bare loop p50", baseline.p50_ms, "ms"),
        Figure.info(SCENARIO, "bare loop p99", baseline.p99_ms, "ms"),
        Figure.info(SCENARIO, "responder alone p50", direct.p50_ms, "ms"),
        Figure.info(SCENARIO, "responder alone p99", direct.p99_ms, "ms"),
        Figure.info(SCENARIO, "responder mean as timed by relay", sandbox_seen_by_relay, "ms"),
        Figure.below(SCENARIO, "relay p99 - responder p99", added, TARGET_ADDED_P99_MS, "ms"),
    ]


async def through_bus(
    session: BenchSession, program: Program, rate: float, seconds: float
) -> tuple[Latencies, float]:
    """Publish -> result event latencies of ``program``; for the relay, also its own mean
    MsgFlash call time (from its metrics), in ms."""
    workspace, upstream = session.workspace, await session.responder()
    topology = workspace.topology(f"latency-{program}")
    connection = await workspace.connect()
    try:
        tap = await ResultTap.declare(connection, workspace, topology)
        env = relay_env(
            workspace,
            topology,
            upstream,
            http_port=free_port(),
            state_url=workspace.sqlite_state_url(topology.prefix),
            rate_limit=UNPACED_RATE,
        )
        log = workspace.path(f"{topology.prefix}.log")
        relay = RelayProcess.create(topology.prefix, env, log) if program == "relay" else None
        child: ChildProcess = relay.child if relay else baseline_process(topology.prefix, env, log)
        await child.start()
        try:
            await wait_for_consumer(connection, topology.messages_queue, alive=child.ensure_running)
            arrivals = await tap.stamp_arrivals()
            sent = await publish_steadily(connection, topology, rate, seconds)
            await _all_arrived(arrivals, len(sent), child)
            mean_ms = await _mean_call_ms(relay) if relay else 0.0
        finally:
            await child.stop()
        await tap.close()
    finally:
        await connection.close()
    warm = sent[0][1] + WARM_UP_SECONDS
    return Latencies.of([arrivals[i] - at for i, at in sent if at >= warm]), mean_ms


async def _all_arrived(arrivals: dict[str, float], count: int, child: ChildProcess) -> None:
    deadline = time.perf_counter() + 60
    while len(arrivals) < count:
        child.ensure_running()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {len(arrivals)} of {count} results within 60 s")
        await asyncio.sleep(0.05)


async def _mean_call_ms(relay: RelayProcess) -> float:
    text = await relay.metrics()
    total = metric_total(text, "relay_msgflash_request_seconds_sum", endpoint=SCHEDULE_ENDPOINT)
    count = metric_total(text, "relay_msgflash_request_seconds_count", endpoint=SCHEDULE_ENDPOINT)
    return 1000 * total / count if count else 0.0


async def upstream_direct(session: BenchSession, rate: float, seconds: float) -> Latencies:
    """The responder's own response time: the same POST, at the same rate, straight from here."""
    upstream = await session.responder()
    payload = to_payload(json.loads(schedule_command("direct", far_future())))
    url, headers = upstream.url + SCHEDULE_PATH, {"x-api-key": DEFAULT_SANDBOX_API_KEY}
    timings: list[tuple[float, float]] = []
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=100, keepalive_timeout=30.0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as http:

        async def call() -> None:
            started = time.perf_counter()
            async with http.post(url, json=payload, headers=headers) as response:
                await response.read()
            timings.append((started, time.perf_counter() - started))

        calls: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for index in range(round(rate * seconds)):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            calls.append(asyncio.create_task(call()))
        await asyncio.gather(*calls)
    return Latencies.of([took for at, took in timings if at >= start + WARM_UP_SECONDS])
