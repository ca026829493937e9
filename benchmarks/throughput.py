"""Scenario 1: pipeline throughput, the relay against the bare baseline, same commands, same
sandbox, limits off. Target: relay / baseline >= 0.8 with everything on. For information: the
relay with the in-memory store (the difference is what SQLite costs), and the baseline doing
its broker work as the relay does (batched acks, confirm-only publishes), against which the
ratio is what the relay's own code costs."""

from __future__ import annotations

from dataclasses import asdict

from benchmarks.report import Figure
from benchmarks.session import BenchSession

SCENARIO = "throughput"
TARGET_RATIO = 0.8


async def run(session: BenchSession) -> list[Figure]:
    count = session.sizes.throughput_commands
    relay = await session.drain("relay", count)
    baseline = await session.drain("baseline", count)
    in_memory = await session.drain("relay-memory", count)
    batched = await session.drain("baseline-batched", count)
    ratio = relay.events_per_second / baseline.events_per_second
    session.details[SCENARIO] = {
        "relay": asdict(relay),
        "baseline": asdict(baseline),
        "relay_memory": asdict(in_memory),
        "baseline_batched": asdict(batched),
    }
    return [
        Figure.info(SCENARIO, f"relay, N={count}", relay.events_per_second, "events/s"),
        Figure.info(SCENARIO, f"baseline, N={count}", baseline.events_per_second, "events/s"),
        Figure.at_least(SCENARIO, "relay / baseline", ratio, TARGET_RATIO),
        Figure.info(SCENARIO, "relay CPU per command", relay.cpu_ms_per_command, "ms"),
        Figure.info(SCENARIO, "baseline CPU per command", baseline.cpu_ms_per_command, "ms"),
        Figure.info(
            SCENARIO,
            "CPU per command, baseline / relay",
            baseline.cpu_ms_per_command / relay.cpu_ms_per_command,
        ),
        Figure.info(SCENARIO, "relay start-up to first event", relay.startup_seconds, "s"),
        # Not the target's configuration: shows how much of the gap is the SQLite store.
        Figure.info(
            SCENARIO,
            f"relay with memory:// store, N={count}",
            in_memory.events_per_second,
            "events/s",
        ),
        Figure.info(
            SCENARIO,
            "relay with memory:// / baseline",
            in_memory.events_per_second / baseline.events_per_second,
        ),
        Figure.info(
            SCENARIO, "relay with memory:// CPU per command", in_memory.cpu_ms_per_command, "ms"
        ),
        # Not the target's baseline: the relay's broker techniques in the bare loop.
        Figure.info(
            SCENARIO,
            f"baseline with batched acks, N={count}",
            batched.events_per_second,
            "events/s",
        ),
        Figure.info(
            SCENARIO,
            "relay / baseline with batched acks",
            relay.events_per_second / batched.events_per_second,
        ),
        Figure.info(
            SCENARIO,
            "baseline with batched acks CPU per command",
            batched.cpu_ms_per_command,
            "ms",
        ),
    ]
