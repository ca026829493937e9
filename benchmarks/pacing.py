"""Scenario 4: pacing accuracy against a sandbox that enforces 10 requests/s per API key.

600 commands through one relay (local limiter, SQLite state) for one key; and, at the same
time, 600 commands for each of 50 accounts through three relays sharing Redis (one limiter per
key across processes; ``benchmarks.aggregate``). The rates and the ``API_RATE_LIMIT_EXCEEDED``
answers come from the sandboxes' request logs. Targets: >= 9.5 requests/s per key, an
aggregate of >= 95 % of the accounts' sum, and no rate-limit 429. The single relay is ready
before its commands are published; the accounts' commands are preloaded (see
``benchmarks.aggregate``), and their rates are taken over the window in which every account
was sending. Each variant has a sandbox of its own; running them together saves a minute of
``make bench``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.aggregate import AggregateRun, aggregate_run, bench_accounts
from benchmarks.bus import ResultTap, publish_commands, wait_for_consumer
from benchmarks.processes import RelayProcess, Sandbox, free_port, relay_env
from benchmarks.report import Figure
from benchmarks.session import BenchSession
from benchmarks.stats import busiest_window

SCENARIO = "pacing"
SANDBOX_LIMIT = 10.0
RELAY_LIMIT = 10.0
TARGET_RATE = 9.5
TARGET_AGGREGATE_SHARE = 0.95  # of the accounts' limits summed
ACCOUNTS = 50
SHARED_RELAYS = 3
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
    count, per_account = session.sizes.pacing_commands, session.sizes.pacing_account_commands
    session.progress(
        SCENARIO,
        f"{count} commands at {RELAY_LIMIT:g}/s through 1 relay; {per_account} for each of "
        f"{ACCOUNTS} accounts through {SHARED_RELAYS} relays sharing Redis",
    )
    accounts = bench_accounts(ACCOUNTS)
    async with asyncio.TaskGroup() as group:  # one failing stops the other, nothing leaks
        one = group.create_task(paced_run(session, relays=1, count=count))
        many = group.create_task(
            aggregate_run(
                session,
                accounts=accounts,
                per_account=per_account,
                relays=SHARED_RELAYS,
                limit=RELAY_LIMIT,
            )
        )
    single, aggregate = one.result(), many.result()
    session.details[SCENARIO] = {"one_relay": asdict(single), "aggregate": asdict(aggregate)}
    label = "1 relay"
    return [
        Figure.at_least(
            SCENARIO, f"{label}: rate", single.requests_per_second, TARGET_RATE, "req/s"
        ),
        Figure.exactly(SCENARIO, f"{label}: {RATE_LIMITED}", single.rate_limited, 0),
        Figure.info(SCENARIO, f"{label}: busiest 1-s window", single.busiest_second, "req"),
        *aggregate_figures(aggregate),
    ]


def aggregate_figures(run: AggregateRun) -> list[Figure]:
    label = f"{run.accounts} accounts, {SHARED_RELAYS} relays, Redis"
    wanted = TARGET_AGGREGATE_SHARE * SANDBOX_LIMIT * run.accounts
    return [
        Figure.at_least(SCENARIO, f"{label}: aggregate", run.aggregate_per_second, wanted, "req/s"),
        Figure.at_least(
            SCENARIO, f"{label}: slowest account", run.min_account_per_second, TARGET_RATE, "req/s"
        ),
        Figure.info(SCENARIO, f"{label}: median account", run.median_account_per_second, "req/s"),
        Figure.exactly(SCENARIO, f"{label}: {RATE_LIMITED}", run.rate_limited, 0),
        Figure.exactly(SCENARIO, f"{label}: failed results", run.failed_results, 0),
        Figure.info(SCENARIO, f"{label}: busiest 1-s window of a key", run.busiest_second, "req"),
        Figure.info(SCENARIO, f"{label}: steady window", run.steady_seconds, "s"),
        Figure.info(SCENARIO, f"{label}: results by the end", run.results, f"of {run.commands}"),
        Figure.info(
            SCENARIO, f"{label}: relays' CPU per request", run.relay_cpu_ms_per_request, "ms"
        ),
        *(
            Figure.info(SCENARIO, f"{label}: CPU, {name}", 100 * share, "% of a core")
            for name, share in run.cpu.items()
            if name != "machine"
        ),
        Figure.info(SCENARIO, f"{label}: CPU, whole machine", 100 * run.cpu["machine"], "%"),
    ]


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
