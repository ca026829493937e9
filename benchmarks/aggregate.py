"""The pacing scenario's aggregate variant: many accounts, each at its own 10 requests/s, through
three relays sharing Redis, against a sandbox that limits every API key on its own.

What it shows: the accounts do not share one budget (the aggregate is the sum of their
rates), none is starved by the others, and the shared pacing still never lets a key exceed
its limit. Everything is read from the sandbox's request log, where each entry carries the
last six characters of its API key.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.bus import ResultTap, publish_commands
from benchmarks.processes import (
    RelayProcess,
    Sandbox,
    Usage,
    cpu_seconds_of,
    free_port,
    machine_busy_seconds,
    relay_env,
)
from benchmarks.session import BenchSession
from benchmarks.stats import busiest_window
from service.contract.amqp import Topology
from service.settings import DEFAULT_SANDBOX_API_KEY

RATE_LIMITED = "API_RATE_LIMIT_EXCEEDED"
SCHEDULE_PATH = "/api/v1/messages/schedule"
KEY_SUFFIX = 6  # characters of an API key the sandbox's request log keeps
# A run is cut short at this multiple of its paced duration, plus the grace.
OVERTIME = 1.25
GRACE_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Account:
    """One benchmark account: its name, its API key and the variable the key is read from."""

    name: str
    api_key: str
    key_env: str

    @property
    def key_suffix(self) -> str:
        return self.api_key[-KEY_SUFFIX:]


def bench_accounts(count: int) -> tuple[Account, ...]:
    """``count`` accounts with keys that differ in their last characters, so the sandbox's
    request log (which keeps only those) tells them apart."""
    return tuple(
        Account(
            name=f"acct-{index:02d}",
            api_key="msgf_live_" + "a5" * 29 + f"{index:06x}",
            key_env=f"MSGFLASH_KEY_ACCT_{index:02d}",
        )
        for index in range(1, count + 1)
    )


def accounts_file(accounts: Sequence[Account], rate_limit: float) -> str:
    """The relay's ``RELAY_ACCOUNTS_FILE`` for ``accounts`` (their keys come from the env)."""
    lines = ["accounts:"]
    for account in accounts:
        lines += [
            f"  - name: {account.name}",
            "    provider: msgflash",
            f"    apiKeyEnv: {account.key_env}",
            f"    rateLimit: {rate_limit:g}",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class AggregateRun:
    accounts: int
    commands: int  # published, all accounts
    results: int  # result events when the run ended (fewer than commands if it was cut short)
    requests: int  # accepted by the sandbox, all accounts
    aggregate_per_second: float  # over the steady window, while every account was sending
    steady_seconds: float
    min_account_per_second: float
    median_account_per_second: float
    slowest_account: str
    rate_limited: int
    busiest_second: int  # most requests of one key in any sliding 1-second window
    failed_results: int
    cpu: dict[str, float]  # share of one core over the run, per process group
    relay_cpu_ms_per_request: float  # the relays' CPU over the run, per accepted request


def summarize_accounts(
    log: Sequence[Mapping[str, Any]], names_by_suffix: Mapping[str, str]
) -> dict[str, Any]:
    """Rates from the sandbox's log of accepted and refused requests.

    An account's rate is its accepted requests after the first over the time they spanned.
    The aggregate counts every accepted request inside the steady window: from the moment
    the last account started to the moment the first one finished, so that neither the
    start nor the uneven end of the run dilutes it.
    """
    accepted = [e for e in log if e.get("code") != RATE_LIMITED]
    times: dict[str, list[float]] = {name: [] for name in names_by_suffix.values()}
    for entry in accepted:
        name = names_by_suffix.get(str(entry.get("key")))
        if name is not None:
            times[name].append(float(entry["at"]))
    rates = {name: _rate(sorted(ts)) for name, ts in times.items()}
    started = max((min(ts) for ts in times.values() if ts), default=0.0)
    ended = min((max(ts) for ts in times.values() if ts), default=0.0)
    steady = ended - started
    inside = sum(1 for ts in times.values() for at in ts if started <= at < ended)
    slowest = min(rates, key=rates.__getitem__) if rates else ""
    return {
        "requests": len(accepted),
        "aggregate_per_second": inside / steady if steady > 0 else 0.0,
        "steady_seconds": steady,
        "min_account_per_second": rates[slowest] if rates else 0.0,
        "median_account_per_second": statistics.median(rates.values()) if rates else 0.0,
        "slowest_account": slowest,
        "rate_limited": sum(1 for e in log if e.get("code") == RATE_LIMITED),
        "busiest_second": max(
            (busiest_window(sorted(ts), 1.0) for ts in times.values()), default=0
        ),
    }


def _rate(times: Sequence[float]) -> float:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else 0.0


async def aggregate_run(
    session: BenchSession,
    *,
    accounts: Sequence[Account],
    per_account: int,
    relays: int,
    limit: float,
) -> AggregateRun:
    """``per_account`` commands for each account through ``relays`` relays sharing Redis."""
    count = per_account * len(accounts)
    sandbox = await Sandbox.start(
        session.workspace,
        "sandbox-aggregate",
        rate_limit=limit,
        request_log_limit=2 * count,
        api_keys=(DEFAULT_SANDBOX_API_KEY, *(a.api_key for a in accounts)),
    )
    try:
        topology, processes = _relays(session, sandbox, accounts, relays=relays, limit=limit)
        return await _measure(
            session, sandbox, topology, processes, accounts, count=count, limit=limit
        )
    finally:
        await sandbox.stop()


def _relays(
    session: BenchSession,
    sandbox: Sandbox,
    accounts: Sequence[Account],
    *,
    relays: int,
    limit: float,
) -> tuple[Topology, list[RelayProcess]]:
    workspace = session.workspace
    topology = workspace.topology("aggregate")
    for name in ("default", *(a.name for a in accounts)):
        workspace.extra_queue(topology.account_queue(name))
    file = workspace.path(f"{topology.prefix}-accounts.yaml")
    file.write_text(accounts_file(accounts, limit))
    state_url = workspace.redis_state_url(topology)
    keys = {a.key_env: a.api_key for a in accounts}
    processes = []
    for index in range(relays):
        env = relay_env(
            workspace, topology, sandbox, http_port=free_port(), state_url=state_url,
            rate_limit=limit,
        )  # fmt: skip
        env |= {"RELAY_ACCOUNTS_FILE": str(file), **keys}
        name = f"{topology.prefix}-{index}"
        processes.append(RelayProcess.create(name, env, workspace.path(f"{name}.log")))
    return topology, processes


async def _measure(
    session: BenchSession,
    sandbox: Sandbox,
    topology: Topology,
    processes: Sequence[RelayProcess],
    accounts: Sequence[Account],
    *,
    count: int,
    limit: float,
) -> AggregateRun:
    workspace = session.workspace

    def alive() -> None:
        for relay in processes:
            relay.child.ensure_running()

    connection = await workspace.connect()
    try:
        tap = await ResultTap.declare(connection, workspace, topology)
        # Preloaded: published while the relays ran, the commands would reach each account
        # no faster than the harness publishes (a few hundred a second on a busy machine).
        await publish_commands(connection, topology, count, accounts=[a.name for a in accounts])
        await asyncio.gather(*(relay.start() for relay in processes))
        await asyncio.gather(*(relay.wait_ready() for relay in processes))
        cpu = CpuWatch.start(processes, sandbox)
        done = await _results_within(tap, count, per_account=count / len(accounts), limit=limit,
                                     alive=alive)  # fmt: skip
        shares, relay_seconds = cpu.shares(), cpu.relay_seconds()
        events = await tap.read(done)
        log = await sandbox.requests(SCHEDULE_PATH)
        await tap.close()
    finally:
        await asyncio.gather(*(relay.stop() for relay in processes))
        await connection.close()
    figures = summarize_accounts(log, {a.key_suffix: a.name for a in accounts})
    failed = sum(1 for e in events if e.get("type") == "msgflash.message.failed")
    per_request = 1000 * relay_seconds / max(figures["requests"], 1)
    return AggregateRun(
        accounts=len(accounts),
        commands=count,
        results=done,
        failed_results=failed,
        cpu=shares,
        relay_cpu_ms_per_request=per_request,
        **figures,
    )


async def _results_within(
    tap: ResultTap, count: int, *, per_account: float, limit: float, alive: Callable[[], None]
) -> int:
    """Wait for every result, but no longer than the paced run should take plus a margin: on
    a machine that cannot keep the pace, what was done by then is measured, and the scenario
    stays within its share of ``make bench``. Returns how many results there were."""
    allowed = OVERTIME * per_account / limit + GRACE_SECONDS
    try:
        return (await tap.wait_for(count, timeout=allowed, alive=alive)).count
    except TimeoutError:
        return await tap.depth()


@dataclass
class CpuWatch:
    """CPU used by the relays, the sandbox, RabbitMQ, Redis and the whole machine over the run:
    which of them saturates, if the rate falls short. RabbitMQ and Redis are shared with
    whatever else runs on the machine, so their shares are upper bounds."""

    relays: Sequence[RelayProcess]
    sandbox: Sandbox
    before: dict[str, float]
    machine: tuple[float, float]
    started: float

    @classmethod
    def start(cls, relays: Sequence[RelayProcess], sandbox: Sandbox) -> CpuWatch:
        watch = cls(relays, sandbox, {}, machine_busy_seconds(), time.perf_counter())
        watch.before = watch._used()
        return watch

    def _used(self) -> dict[str, float]:
        def cpu(usage: Usage) -> float:
            return usage.cpu_seconds

        return {
            "relays": sum(cpu(relay.child.usage()) for relay in self.relays),
            "sandbox": cpu(self.sandbox.child.usage()),
            "rabbitmq": cpu_seconds_of("beam.smp"),
            "redis": cpu_seconds_of("redis-server"),
        }

    def shares(self) -> dict[str, float]:
        """Each group's CPU seconds per wall second (1.0 = one core busy), and the machine's
        busy share of all its cores."""
        seconds = time.perf_counter() - self.started
        after = self._used()
        shares = {name: (after[name] - self.before[name]) / seconds for name in after}
        busy, total = machine_busy_seconds()
        shares["machine"] = (busy - self.machine[0]) / (total - self.machine[1])
        return shares

    def relay_seconds(self) -> float:
        return self._used()["relays"] - self.before["relays"]
