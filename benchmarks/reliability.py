"""Scenario 6: half-open links. A batch of commands runs while one of the relay's links is
blackholed (bytes stop both ways, no FIN or RST) through the loopback proxy of the test
suite, then healed: how fast the relay notices, and whether any command was lost, parked or
sent twice.

Three links: the broker (old connection dead for good, as after a NAT drop), MsgFlash (held
bytes delivered on heal) and Redis shared by two replicas (old connections dead for good).
Every command has the same content, the hard case for reconciliation. The links run at the
same time, each with its own relays, proxy, prefix and sandbox (duplicates are counted from a
sandbox's request log), since a blackhole is mostly waiting: one after another they made most
of ``make bench``'s overrun of its ten minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aio_pika.abc import AbstractIncomingMessage

from benchmarks.bus import ResultTap, publish_commands, wait_for_consumer
from benchmarks.processes import RelayProcess, Sandbox, free_port, relay_env
from benchmarks.report import Figure
from benchmarks.session import BenchSession
from service.contract.amqp import Topology
from tests.links import LinkProxy

SCENARIO = "reliability"
LINKS = ("broker", "msgflash", "redis")
BLACKHOLE_SECONDS = {"broker": 30.0, "msgflash": 20.0, "redis": 15.0}
HEARTBEAT_SECONDS = 5
RESULTS_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class LinkRun:
    link: str
    commands: int
    unready_after: float | None  # blackhole -> /readyz 503
    ready_after_heal: float | None
    lost: int  # no result event at all
    parked: int  # a failure event
    duplicates: int  # messages created at MsgFlash beyond one per command


async def run(session: BenchSession) -> list[Figure]:
    async with asyncio.TaskGroup() as group:  # one failing stops the others, nothing leaks
        tasks = [group.create_task(isolated_batch(session, link)) for link in LINKS]
    figures: list[Figure] = []
    for link, task in zip(LINKS, tasks, strict=True):
        result = task.result()
        session.progress(SCENARIO, f"{link}: {asdict(result)}")
        session.details.setdefault(SCENARIO, {})[link] = asdict(result)
        figures += figures_of(result)
    return figures


async def isolated_batch(session: BenchSession, link: str) -> LinkRun:
    sandbox = await Sandbox.start(
        session.workspace,
        f"sandbox-reliability-{link}",
        rate_limit=None,
        request_log_limit=5 * session.sizes.backoff_commands,
    )
    try:
        return await blackholed_batch(session, sandbox, link)
    finally:
        await sandbox.stop()


def figures_of(run: LinkRun) -> list[Figure]:
    label = f"{run.link} blackholed {BLACKHOLE_SECONDS[run.link]:g} s, N={run.commands}"
    figures = [
        Figure.exactly(SCENARIO, f"{label}: lost", run.lost, 0),
        Figure.exactly(SCENARIO, f"{label}: created twice", run.duplicates, 0),
        Figure.exactly(SCENARIO, f"{label}: parked", run.parked, 0),
    ]
    if run.link == "broker" and run.unready_after is not None:
        figures.append(
            Figure.below(
                SCENARIO,
                f"broker silence noticed (heartbeat {HEARTBEAT_SECONDS} s)",
                run.unready_after,
                2 * HEARTBEAT_SECONDS,
                "s",
            )
        )
    if run.ready_after_heal is not None:
        name = f"{run.link}: ready again after heal"
        figures.append(Figure.info(SCENARIO, name, run.ready_after_heal, "s"))
    return figures


async def blackholed_batch(session: BenchSession, sandbox: Sandbox, link: str) -> LinkRun:
    workspace = session.workspace
    await sandbox.admin("PUT", "/_sandbox/faults", {"latency_ms": 50})
    topology = workspace.topology(f"reliability-{link}")
    target = {
        "broker": urlsplit(workspace.endpoints.amqp_url).port or 5672,
        "msgflash": urlsplit(sandbox.url).port or 80,
        "redis": urlsplit(workspace.endpoints.redis_url).port or 6379,
    }[link]
    count = session.sizes.backoff_commands
    connection = await workspace.connect()
    async with LinkProxy(target) as proxy:
        replicas = 2 if link == "redis" else 1
        relays = [relay_for(session, sandbox, topology, link, proxy, i) for i in range(replicas)]
        tap = await ResultTap.declare(connection, workspace, topology)
        events: list[dict[str, Any]] = []

        async def take(message: AbstractIncomingMessage) -> None:
            events.append(json.loads(message.body))

        await tap.channel.set_qos(prefetch_count=1000)
        await tap.queue.consume(take, no_ack=True)
        try:
            for relay in relays:
                await relay.start()
                await relay.wait_ready()
            await wait_for_consumer(connection, topology.messages_queue)
            ids = set(await publish_commands(connection, topology, count))
            await until(lambda: len(events) >= count // 10, timeout=RESULTS_TIMEOUT)
            proxy.blackhole(max_seconds=BLACKHOLE_SECONDS[link] * 3)
            blackholed_at = time.monotonic()
            unready = await first_unready(relays[0], BLACKHOLE_SECONDS[link])
            unready_after = None if unready is None else unready - blackholed_at
            await asyncio.sleep(
                max(0.0, blackholed_at + BLACKHOLE_SECONDS[link] - time.monotonic())
            )
            proxy.heal(resume_old=link == "msgflash")
            healed_at = time.monotonic()
            await relays[0].wait_ready()
            ready_after = time.monotonic() - healed_at
            await until(lambda: request_ids(events) >= ids, timeout=RESULTS_TIMEOUT)
        finally:
            for relay in relays:
                await relay.stop()
            await tap.close()
            await connection.close()
    await sandbox.admin("DELETE", "/_sandbox/faults")
    created = [r for r in await sandbox.requests("/api/v1/messages/schedule") if r["status"] == 201]
    answered = request_ids(events)
    parked = request_ids([e for e in events if e.get("type") == "msgflash.message.failed"])
    return LinkRun(
        link=link,
        commands=count,
        unready_after=unready_after,
        ready_after_heal=ready_after,
        lost=len(ids - answered),
        parked=len(parked),
        duplicates=max(0, len(created) - (count - len(parked))),
    )


def relay_for(
    session: BenchSession,
    sandbox: Sandbox,
    topology: Topology,
    link: str,
    proxy: LinkProxy,
    index: int,
) -> RelayProcess:
    """A relay whose ``link`` goes through ``proxy``; the others go straight to their peer."""
    workspace = session.workspace
    env = relay_env(
        workspace,
        topology,
        sandbox,
        http_port=free_port(),
        state_url=workspace.redis_state_url(topology),
        rate_limit=1000.0,
    )
    env["RELAY_AMQP_HEARTBEAT_SECONDS"] = str(HEARTBEAT_SECONDS)
    if link == "broker":
        env["AMQP_URL"] = via(workspace.endpoints.amqp_url, proxy)
    elif link == "msgflash":
        env["MSGFLASH_BASE_URL"] = f"http://127.0.0.1:{proxy.port}"
    else:
        env["RELAY_STATE_URL"] = via(env["RELAY_STATE_URL"], proxy)
    name = f"{topology.prefix}-{index}"
    return RelayProcess.create(name, env, workspace.path(f"{name}.log"))


def via(url: str, proxy: LinkProxy) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}").geturl()


async def first_unready(relay: RelayProcess, within: float) -> float | None:
    """When ``/readyz`` first answered 503 (monotonic), or None if not within ``within`` s."""
    deadline = time.monotonic() + within
    url = f"http://127.0.0.1:{relay.admin_port}/readyz"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as response:
                    if response.status == 503:
                        return time.monotonic()
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    return None


def request_ids(events: list[dict[str, Any]]) -> set[str]:
    return {str(event["data"]["requestId"]) for event in events}


async def until(condition: Callable[[], bool], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"reliability: condition not met within {timeout:g} s")
        await asyncio.sleep(0.1)
