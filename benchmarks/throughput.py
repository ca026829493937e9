"""Scenario 1: pipeline throughput against the minimal responder, interleaved over rounds.

Each round drains N preloaded commands with every program, one after another, in an order
that rotates from round to round: the relay (everything on), the relay with ``memory://``
(the difference is what SQLite costs), the bare loop (uvloop, orjson, per-message confirmed
publish and ack), the FastStream peer, and for information the bare loop with the relay's
batched acks. Reported: median and range of events/s and CPU ms per command, and the
round-by-round ratios relay / bare and relay / FastStream. Targets from issue 20.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

from benchmarks.drain import DrainRun, Program
from benchmarks.report import Figure
from benchmarks.session import BenchSession
from benchmarks.stats import Spread, ratios, rotated

SCENARIO = "throughput"
TARGET_BARE = 0.7
TARGET_FASTSTREAM = 1.5
PROGRAMS: tuple[Program, ...] = ("relay", "relay-memory", "bare", "faststream", "bare-batched")
LABELS: Mapping[Program, str] = {
    "relay": "relay",
    "relay-memory": "relay, memory://",
    "bare": "bare loop",
    "faststream": "FastStream",
    "bare-batched": "bare loop, batched acks",
}


async def run(session: BenchSession) -> list[Figure]:
    count, rounds = session.sizes.throughput_commands, session.sizes.throughput_rounds
    runs: dict[Program, list[DrainRun]] = {program: [] for program in PROGRAMS}
    for index in range(rounds):
        session.progress(SCENARIO, f"round {index + 1} of {rounds}")
        for program in rotated(PROGRAMS, index):
            runs[program].append(await session.drain_again(program, count))  # type: ignore[arg-type]
    rates = {p: [r.events_per_second for r in runs[p]] for p in PROGRAMS}
    session.relay_events_per_second = Spread.of(rates["relay"]).median
    session.details[SCENARIO] = {p: [asdict(r) for r in runs[p]] for p in PROGRAMS}
    return figures(count, runs)


def figures(count: int, runs: Mapping[Program, Sequence[DrainRun]]) -> list[Figure]:
    rates = {p: [r.events_per_second for r in rs] for p, rs in runs.items()}
    cpu = {p: [r.cpu_ms_per_command for r in rs] for p, rs in runs.items()}
    rounds = len(rates["relay"])
    out = []
    for program, label in LABELS.items():
        out.append(
            Figure.median(
                SCENARIO, f"{label}, N={count} x {rounds}", Spread.of(rates[program]), "events/s"
            )
        )
        out.append(
            Figure.median(SCENARIO, f"{label}, CPU per command", Spread.of(cpu[program]), "ms")
        )
    out += [
        Figure.median(
            SCENARIO,
            "relay / bare loop",
            Spread.of(ratios(rates["relay"], rates["bare"])),
            at_least=TARGET_BARE,
        ),
        Figure.median(
            SCENARIO,
            "relay / FastStream",
            Spread.of(ratios(rates["relay"], rates["faststream"])),
            at_least=TARGET_FASTSTREAM,
        ),
        Figure.median(
            SCENARIO,
            "relay / bare loop with batched acks",
            Spread.of(ratios(rates["relay"], rates["bare-batched"])),
        ),
        Figure.median(
            SCENARIO,
            "CPU per command, relay - bare loop",
            Spread.of([r - b for r, b in zip(cpu["relay"], cpu["bare"], strict=True)]),
            "ms",
        ),
        *where_the_time_goes(runs),
    ]
    return out


def where_the_time_goes(runs: Mapping[Program, Sequence[DrainRun]]) -> list[Figure]:
    """Whose CPU a drain costs besides the program's own, and how busy the machine was: a
    program that is not using a whole core is waiting, on the broker or on the machine."""
    out = []
    for program in ("relay", "bare", "faststream"):
        label = LABELS[program]
        rs = runs[program]
        out += [
            Figure.median(
                SCENARIO, f"{label}, CPU share (1 = one core)", Spread.of([r.cpu_share for r in rs])
            ),
            Figure.median(
                SCENARIO,
                f"{label} rounds, RabbitMQ CPU per command",
                Spread.of([r.broker_cpu_ms_per_command for r in rs]),
                "ms",
            ),
            Figure.median(
                SCENARIO,
                f"{label} rounds, machine busy (1 = both cores)",
                Spread.of([r.machine_busy_share for r in rs]),
            ),
        ]
    out.append(
        Figure.median(
            SCENARIO,
            "responder CPU per command (relay rounds)",
            Spread.of([r.upstream_cpu_ms_per_command for r in runs["relay"]]),
            "ms",
        )
    )
    return out
