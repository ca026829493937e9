"""``python -m benchmarks [--only throughput,latency] [--quick]``: run, print the table, save JSON.

Scenarios run one after another (pacing's two variants together, since they hardly use the
CPU), each against its own exchange prefix, and everything they created is deleted at the
end. The exit status is 1 only when a scenario could not be measured or the cleanup could not
finish; missed targets are reported in the table, not turned into failures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aio_pika
import aiormq.exceptions

from benchmarks import (
    backoff,
    crash,
    fairness,
    latency,
    memory,
    pacing,
    profiling,
    reliability,
    throughput,
    tracing,
    webhook,
)
from benchmarks.report import Figure, render_table, write_json
from benchmarks.session import BenchSession, Sizes
from benchmarks.workspace import CleanupIncomplete, Endpoints, Workspace

Scenario = Callable[[BenchSession], Awaitable[list[Figure]]]
# In the order they run; profiling is opt-in (it slows the relay down and takes a while).
SCENARIOS: dict[str, Scenario] = {
    "throughput": throughput.run,
    "memory": memory.run,
    "latency": latency.run,
    "webhook": webhook.run,
    "pacing": pacing.run,
    "backoff": backoff.run,
    "crash": crash.run,
    "tracing": tracing.run,
    "fairness": fairness.run,
    "reliability": reliability.run,
    "profile": profiling.run,
}
DEFAULT_SCENARIOS = (
    "throughput",
    "memory",
    "latency",
    "webhook",
    "pacing",
    "backoff",
    "crash",
    "tracing",
    "fairness",
    "reliability",
)
BROKER_WAIT_SECONDS = 180.0
ATTEMPTS = 3  # per scenario, when the broker is lost midway
AMQP_ERRORS = (aio_pika.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError)
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated scenarios to run, from: {', '.join(SCENARIOS)} "
        f"(default: {', '.join(DEFAULT_SCENARIOS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for working on the harness itself"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="JSON results file (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    args.scenarios = _selected(parser, args.only)
    return args


def _selected(parser: argparse.ArgumentParser, only: str | None) -> list[str]:
    if only is None:
        return list(DEFAULT_SCENARIOS)
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    unknown = sorted(wanted - set(SCENARIOS))
    if unknown or not wanted:
        parser.error(f"--only: unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    return [name for name in SCENARIOS if name in wanted]


async def run_scenarios(names: Sequence[str], session: BenchSession) -> list[Figure]:
    figures: list[Figure] = []
    for name in names:
        started = time.monotonic()
        session.progress(name, "starting")
        figures += await run_scenario(name, session)
        session.progress(name, f"done in {time.monotonic() - started:.0f} s")
    return figures


async def run_scenario(name: str, session: BenchSession) -> list[Figure]:
    """Run one scenario; again if the shared broker went away under it (restarted by another
    job), since that says nothing about the relay. Other failures become an error row so that
    one scenario failing does not hide the others' figures."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await SCENARIOS[name](session)
        except Exception as exc:
            session.progress(name, f"failed: {type(exc).__name__}: {exc}")
            if attempt < ATTEMPTS and lost_broker(exc) and await broker_back(session):
                session.progress(name, "the broker was away and is back: running it again")
                continue
            return [Figure.failed(name, exc)]
    raise AssertionError("unreachable")  # pragma: no cover


def lost_broker(error: BaseException) -> bool:
    """Whether a connection or AMQP error is anywhere in the error's story (a channel found
    closed counts: that is how a broker restart shows on a channel in use)."""
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, (ConnectionError, *AMQP_ERRORS)):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return False


async def broker_back(session: BenchSession) -> bool:
    deadline = time.monotonic() + BROKER_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            connection = await session.workspace.connect()
        except (OSError, aio_pika.exceptions.AMQPError):
            await asyncio.sleep(2)
            continue
        await connection.close()
        return True
    return False


async def main_async(args: argparse.Namespace) -> int:
    started = time.monotonic()
    sizes = Sizes.quick() if args.quick else Sizes.full()
    session = BenchSession(sizes, Workspace.create(Endpoints.from_environment()))
    cleaned = False
    try:
        figures = await run_scenarios(args.scenarios, session)
    finally:
        try:
            await session.close()
            cleaned = True
        except CleanupIncomplete as exc:
            print(f"cleanup: {exc}", file=sys.stderr)
    seconds = time.monotonic() - started
    print(render_table(figures))
    print(f"\n{len(args.scenarios)} scenario(s) in {seconds:.0f} s; figures in {args.output}")
    mode = "quick" if args.quick else "full"
    write_json(args.output, figures, session.details, mode=mode, seconds=seconds)
    errors = any(figure.verdict == "error" for figure in figures)
    return 1 if errors or not cleaned else 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
