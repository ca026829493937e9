"""Scenario: webhook intake, the relay's public port against a bare aiohttp handler.

Signed MsgFlash deliveries are POSTed from a second process (``benchmarks.webhook_load``) at
the relay's ``/webhooks/msgflash`` (verify, dedupe, correlate, publish with confirm, 2xx) and
at ``benchmarks.peers.bare_webhook`` (verify, publish with confirm, 200), each with its events
exchange bound to a tap so every publish is routed. First the maximum intake of each, over
rounds in rotating order (requests/s, ratio round by round), then both at a steady half of the
relay's median maximum: p50/p99. Targets from issue 20: ratio >= 0.7, relay p99 <= 20 ms.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, Literal

from benchmarks.processes import (
    ChildProcess,
    RelayProcess,
    free_port,
    relay_env,
    wait_until_ok,
)
from benchmarks.report import Figure
from benchmarks.session import BenchSession
from benchmarks.stats import Spread, ratios, rotated
from benchmarks.workspace import Workspace
from service.bus.topology import declare_topology
from service.contract.amqp import Topology

SCENARIO = "webhook"
TARGET_RATIO = 0.7
TARGET_P99_MS = 20.0
LOAD_FACTOR = 0.5
CONCURRENCY = 32
SECRET = "bench-webhook-secret"
PATH = "/webhooks/msgflash"
Intake = Literal["relay", "bare"]
INTAKES: tuple[Intake, ...] = ("relay", "bare")


async def run(session: BenchSession) -> list[Figure]:
    requests, rounds = session.sizes.webhook_requests, session.sizes.throughput_rounds
    peaks: dict[Intake, list[float]] = {"relay": [], "bare": []}
    cpu: dict[Intake, list[float]] = {"relay": [], "bare": []}
    for index in range(rounds):
        for intake in rotated(INTAKES, index):
            load = ["--mode", "max", "--requests", str(requests)]
            load += ["--concurrency", str(CONCURRENCY), "--seconds", "30"]
            result = await measure(session, intake, load)  # type: ignore[arg-type]
            peaks[intake].append(float(result["requests_per_second"]))  # type: ignore[index]
            cpu[intake].append(float(result["cpu_ms_per_request"]))  # type: ignore[index]
            session.progress(SCENARIO, f"{intake}: {result}")
    rate = LOAD_FACTOR * Spread.of(peaks["relay"]).median
    seconds = session.sizes.webhook_seconds
    steady = {}
    for intake in INTAKES:
        load = ["--mode", "rate", "--rate", f"{rate:.1f}", "--seconds", f"{seconds:g}"]
        steady[intake] = await measure(session, intake, load)
        session.progress(SCENARIO, f"{intake} at {rate:.0f}/s: {steady[intake]}")
    session.details[SCENARIO] = {"peaks": peaks, "steady_rate": rate, "steady": steady}
    return [
        Figure.median(
            SCENARIO, f"relay, {requests} x {rounds}", Spread.of(peaks["relay"]), "req/s"
        ),
        Figure.median(
            SCENARIO, f"bare handler, {requests} x {rounds}", Spread.of(peaks["bare"]), "req/s"
        ),
        Figure.median(SCENARIO, "relay, CPU per request", Spread.of(cpu["relay"]), "ms"),
        Figure.median(SCENARIO, "bare handler, CPU per request", Spread.of(cpu["bare"]), "ms"),
        Figure.median(
            SCENARIO,
            "relay / bare handler",
            Spread.of(ratios(peaks["relay"], peaks["bare"])),
            at_least=TARGET_RATIO,
        ),
        Figure.info(SCENARIO, "steady rate (50 % of relay max)", rate, "req/s"),
        Figure.info(SCENARIO, "relay p50", _ms(steady["relay"], "p50_ms"), "ms"),
        Figure.below(SCENARIO, "relay p99", _ms(steady["relay"], "p99_ms"), TARGET_P99_MS, "ms"),
        Figure.info(SCENARIO, "bare handler p50", _ms(steady["bare"], "p50_ms"), "ms"),
        Figure.info(SCENARIO, "bare handler p99", _ms(steady["bare"], "p99_ms"), "ms"),
    ]


def _ms(result: dict[str, Any], key: str) -> float:
    value = result.get(key)
    return float(value) if value is not None else float("nan")


async def measure(session: BenchSession, intake: Intake, load: list[str]) -> dict[str, Any]:
    """Start ``intake`` on a fresh topology, run the load process against it, stop it."""
    workspace = session.workspace
    topology = workspace.topology(f"webhook-{intake}")
    await declare_with_tap(workspace, topology)
    port = free_port()
    env = relay_env(
        workspace,
        topology,
        await session.responder(),
        http_port=port,
        state_url=workspace.sqlite_state_url(topology.prefix),
        rate_limit=100_000.0,
    )
    env["MSGFLASH_WEBHOOK_SECRET"] = SECRET
    log = workspace.path(f"{topology.prefix}.log")
    child = intake_process(intake, topology.prefix, env, log)
    await child.start()
    try:
        if intake == "relay":
            await wait_until_ok(child, f"http://127.0.0.1:{env['RELAY_ADMIN_PORT']}/readyz")
        await wait_listening(child, port)
        url = f"http://127.0.0.1:{port}{PATH}"
        before = child.usage().cpu_seconds
        result = await run_load(["--url", url, "--secret", SECRET, *load])
        child.ensure_running()
        used = child.usage().cpu_seconds - before
        result["cpu_ms_per_request"] = 1000 * used / max(int(result["requests"]), 1)
    finally:
        await child.stop()
    statuses = result.get("statuses", {})
    if set(statuses) != {"200"}:
        raise RuntimeError(f"{intake}: answers other than 200: {statuses}\n{child.tail()}")
    return result


def intake_process(intake: Intake, name: str, env: dict[str, str], log: Any) -> ChildProcess:
    if intake == "relay":
        return RelayProcess.create(name, env, log).child
    return ChildProcess(name, [sys.executable, "-m", "benchmarks.peers.bare_webhook"], env, log)


async def declare_with_tap(workspace: Workspace, topology: Topology) -> None:
    """The relay's topology and a queue taking every ``webhook.*`` event (deleted afterwards)."""
    connection = await workspace.connect()
    try:
        await declare_topology(connection, topology)
        channel = await connection.channel()
        name = workspace.extra_queue(f"{topology.prefix}.bench-webhooks")
        queue = await channel.declare_queue(name, durable=False)
        await queue.bind(topology.events_exchange, routing_key="webhook.#")
        await channel.close()
    finally:
        await connection.close()


async def wait_listening(child: ChildProcess, port: int, timeout: float = 60) -> None:
    """Until the intake's port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.ensure_running()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"{child.name} did not listen on {port} within {timeout:g} s")


async def run_load(argv: list[str], timeout: float = 120) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.webhook_load",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"webhook load failed: {err.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result
