"""Scenario: fairness between accounts (contract §7), with per-account lanes and without.

Account ``bulk`` has a backlog of thousands of commands, paced at 10/s; account ``default``
publishes 5 commands/s meanwhile. The figure is ``default``'s p99 from publish to result event;
target 1 s. Without lanes (``RELAY_ACCOUNT_IN_FLIGHT=0``, the shared queue alone) most of
``default``'s commands wait behind the backlog for longer than the run: those count with the
time they had waited when it ended, so that p99 is a lower bound.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aio_pika.abc import AbstractConnection

from benchmarks.bus import (
    COMMAND_ROUTING_KEY,
    ResultTap,
    command_message,
    far_future,
    publish_steadily,
    schedule_command,
    wait_for_consumer,
)
from benchmarks.latency import Latencies
from benchmarks.processes import RelayProcess, Sandbox, free_port, relay_env
from benchmarks.report import Figure
from benchmarks.session import BenchSession
from service.contract.amqp import Topology
from service.settings import DEFAULT_SANDBOX_API_KEY

SCENARIO = "fairness"
BULK_KEY = "msgf_live_" + "b1" * 32
PACE = 10.0  # each account's requests/s, MsgFlash's limit per key
STEADY_RATE = 5.0  # the other account's commands/s
LANE = 16
TARGET_P99_MS = 1000.0
WARM_UP_SECONDS = 1.0
ACCOUNTS_FILE = f"""accounts:
  - name: bulk
    provider: msgflash
    apiKeyEnv: MSGFLASH_KEY_BULK
    rateLimit: {PACE:g}
"""


async def run(session: BenchSession) -> list[Figure]:
    sandbox = await Sandbox.start(
        session.workspace,
        "sandbox-fairness",
        rate_limit=None,
        request_log_limit=1_000,
        api_keys=(DEFAULT_SANDBOX_API_KEY, BULK_KEY),
    )
    try:
        lanes = await measure(session, sandbox, lane=LANE)
        shared = await measure(session, sandbox, lane=0)
    finally:
        await sandbox.stop()
    backlog = session.sizes.fairness_backlog
    session.details[SCENARIO] = {"backlog": backlog, "lanes": lanes, "shared_queue": shared}
    return [
        Figure.info(SCENARIO, "backlog of the bulk account", backlog, "commands"),
        Figure.below(SCENARIO, "other account p99, lanes", lanes["p99_ms"], TARGET_P99_MS, "ms"),
        Figure.info(SCENARIO, "other account p50, lanes", lanes["p50_ms"], "ms"),
        Figure.info(SCENARIO, "other account p99, shared queue (>=)", shared["p99_ms"], "ms"),
        Figure.info(SCENARIO, "other account done, shared queue", shared["done_share"], "%"),
    ]


async def measure(session: BenchSession, sandbox: Sandbox, *, lane: int) -> dict[str, float]:
    """The other account's latencies while the bulk account's backlog is being worked off."""
    workspace = session.workspace
    await sandbox.reset()
    topology = workspace.topology(f"fairness-{lane}")
    for account in ("bulk", "default"):
        workspace.extra_queue(topology.account_queue(account))
    accounts = workspace.path(f"{topology.prefix}-accounts.yaml")
    accounts.write_text(ACCOUNTS_FILE)
    env = relay_env(
        workspace,
        topology,
        sandbox,
        http_port=free_port(),
        state_url=workspace.sqlite_state_url(topology.prefix),
        rate_limit=PACE,
    )
    env |= {
        "RELAY_ACCOUNTS_FILE": str(accounts),
        "MSGFLASH_KEY_BULK": BULK_KEY,
        "RELAY_ACCOUNT_IN_FLIGHT": str(lane),
    }
    connection = await workspace.connect()
    try:
        tap = await ResultTap.declare(connection, workspace, topology)
        relay = RelayProcess.create(topology.prefix, env, workspace.path(f"{topology.prefix}.log"))
        await relay.start()
        try:
            alive = relay.child.ensure_running
            await wait_for_consumer(connection, topology.messages_queue, alive=alive)
            arrivals = await tap.stamp_arrivals()
            await publish_backlog(connection, topology, session.sizes.fairness_backlog)
            seconds = session.sizes.fairness_seconds
            sent = await publish_steadily(connection, topology, STEADY_RATE, seconds)
            ended = await settle(arrivals, {i for i, _ in sent}, relay)
        finally:
            await relay.stop()
        await tap.close()
    finally:
        await connection.close()
    warm = sent[0][1] + WARM_UP_SECONDS
    measured = [(i, at) for i, at in sent if at >= warm]
    waited = [arrivals.get(i, ended) - at for i, at in measured]
    done = sum(1 for i, _ in measured if i in arrivals)
    latencies = Latencies.of(waited)
    return {
        "p50_ms": latencies.p50_ms,
        "p99_ms": latencies.p99_ms,
        "done_share": 100.0 * done / len(measured),
    }


async def publish_backlog(connection: AbstractConnection, topology: Topology, count: int) -> None:
    """The bulk account's backlog, with confirms; ids without a correlation the tap pairs."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        exchange = await channel.get_exchange(topology.commands_exchange)
        scheduled_at = far_future()
        publishes = []
        for _ in range(count):
            command_id = str(uuid.uuid4())
            body = json.loads(schedule_command(command_id, scheduled_at))
            message = command_message(json.dumps({**body, "account": "bulk"}).encode(), command_id)
            message.correlation_id = f"bulk-{command_id}"
            publishes.append(exchange.publish(message, COMMAND_ROUTING_KEY, timeout=60))
        await asyncio.gather(*publishes)
    finally:
        await channel.close()


async def settle(arrivals: dict[str, float], wanted: set[str], relay: RelayProcess) -> float:
    """Give the last commands the target's time to come back; when the wait ended."""
    deadline = time.perf_counter() + 2 * TARGET_P99_MS / 1000
    while time.perf_counter() < deadline and not wanted <= arrivals.keys():
        relay.child.ensure_running()
        await asyncio.sleep(0.05)
    return time.perf_counter()
