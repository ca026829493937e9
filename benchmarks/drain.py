"""One program draining a queue of preloaded commands: the measurement behind throughput,
memory and profiling.

N ``message.schedule`` commands are preloaded in ``<prefix>.messages``, then the program (the
relay, the bare loop or the FastStream peer) is started, calling the minimal responder as
MsgFlash. The clock runs from the first result event on the
bus to the last, so interpreter start-up is reported apart and not counted against either.
CPU time is read at both ends too, so CPU per command excludes start-up as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.bus import ResultTap, publish_commands
from benchmarks.processes import (
    ChildProcess,
    RelayProcess,
    Upstream,
    Usage,
    baseline_process,
    cpu_seconds_of,
    faststream_process,
    free_port,
    machine_busy_seconds,
    relay_env,
)
from benchmarks.workspace import Workspace

# "relay-memory": the relay with RELAY_STATE_URL=memory://, to show what the SQLite store costs.
# "bare-batched": the bare loop acking and publishing as the relay does (see baseline.py).
Program = Literal["relay", "relay-memory", "bare", "bare-batched", "faststream"]
# "Unlimited" for the relay's own pacing (the setting's maximum), since the sandbox's limit is off.
UNPACED_RATE = 100_000.0
BROKER_PROCESS = "beam.smp"  # RabbitMQ's Erlang VM


@dataclass(frozen=True, slots=True)
class DrainRun:
    program: Program
    commands: int
    seconds: float  # first result event -> last
    events_per_second: float
    startup_seconds: float  # process spawned -> first result event
    peak_rss_mb: float
    cpu_ms_per_command: float  # between the first and the last result event
    cpu_share: float  # CPU seconds per wall second in that window (1.0 = one core)
    upstream_cpu_ms_per_command: float  # the responder's, in the same window
    broker_cpu_ms_per_command: float  # RabbitMQ's (every beam.smp), in the same window
    machine_busy_share: float  # all cores busy, whoever used them (1.0 = every core)


async def drain_preloaded(
    workspace: Workspace,
    upstream: Upstream,
    program: Program,
    count: int,
    *,
    profile_to: Path | None = None,
) -> DrainRun:
    await upstream.reset()
    topology = workspace.topology(f"{program}-{count}")
    connection = await workspace.connect()
    try:
        tap = await ResultTap.declare(connection, workspace, topology)
        await publish_commands(connection, topology, count)
        env = relay_env(
            workspace,
            topology,
            upstream,
            http_port=free_port(),
            state_url="memory://"
            if program == "relay-memory"
            else workspace.sqlite_state_url(topology.prefix),
            rate_limit=UNPACED_RATE,
        )
        log = workspace.path(f"{topology.prefix}.log")
        child = program_process(program, topology.prefix, env, log, profile_to)
        upstream_cpu = _cpu_reader(upstream)
        at_first: list[Usage] = []
        upstream_first: list[float] = []
        shared_first: list[tuple[float, tuple[float, float]]] = []
        spawned = time.perf_counter()
        await child.start()
        try:
            arrivals = await tap.wait_for(
                count,
                timeout=120 + count / 50,
                alive=child.ensure_running,
                on_first=lambda: (
                    at_first.append(child.usage()),
                    upstream_first.append(upstream_cpu()),
                    shared_first.append((cpu_seconds_of(BROKER_PROCESS), machine_busy_seconds())),
                ),
            )
            at_last = child.usage()
            upstream_last = upstream_cpu()
            broker_last, (busy_last, total_last) = (
                cpu_seconds_of(BROKER_PROCESS),
                machine_busy_seconds(),
            )
        finally:
            await child.stop(timeout=60)
        await tap.close()
    finally:
        await connection.close()
    window = arrivals.last_at - arrivals.first_at
    timed = count - arrivals.first_depth
    cpu = at_last.cpu_seconds - at_first[0].cpu_seconds
    return DrainRun(
        program=program,
        commands=count,
        seconds=window,
        events_per_second=timed / window if window > 0 else float("inf"),
        startup_seconds=arrivals.first_at - spawned,
        peak_rss_mb=at_last.peak_rss_mb,
        cpu_ms_per_command=1000 * cpu / max(timed, 1),
        cpu_share=cpu / window if window > 0 else 0.0,
        upstream_cpu_ms_per_command=1000 * (upstream_last - upstream_first[0]) / max(timed, 1),
        broker_cpu_ms_per_command=1000 * (broker_last - shared_first[0][0]) / max(timed, 1),
        machine_busy_share=_share(
            busy_last - shared_first[0][1][0], total_last - shared_first[0][1][1]
        ),
    )


def _share(busy: float, total: float) -> float:
    return busy / total if total > 0 else 0.0


def program_process(
    program: Program, name: str, env: dict[str, str], log: Path, profile_to: Path | None = None
) -> ChildProcess:
    """The child process running ``program`` with the relay's environment ``env``."""
    if program in ("relay", "relay-memory"):
        return RelayProcess.create(name, env, log, profile_to=profile_to).child
    if program == "faststream":
        return faststream_process(name, env, log)
    if program == "bare-batched":
        env["BASELINE_BROKER"] = "batched"
    return baseline_process(name, env, log)


def _cpu_reader(upstream: Upstream) -> Callable[[], float]:
    """The upstream's CPU seconds so far, when it runs in a child process of ours."""
    child = getattr(upstream, "child", None)
    if isinstance(child, ChildProcess):
        return lambda: child.usage().cpu_seconds
    return lambda: 0.0
