"""Scenario: kill -9 with a full prefetch in flight, and what finishing it costs.

One relay paced at MsgFlash's 10 requests/s takes a backlog with the default prefetch (64), so
nearly all of its commands wait for a pacing slot when it is killed; a second relay then takes
them over. Reported: the commands in flight at the kill, the time from the kill until as many
results as that came in and until every command had one, the duplicates MsgFlash received and
the commands dead-lettered (a command whose holder died before calling must simply be sent).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from benchmarks.bus import ResultTap, publish_commands, wait_for_consumer
from benchmarks.processes import RelayProcess, free_port, metric_total, relay_env
from benchmarks.report import Figure
from benchmarks.session import BenchSession

SCENARIO = "crash"
RATE = 10.0
RESULTS_BEFORE_KILL = 20


@dataclass(frozen=True, slots=True)
class CrashRun:
    commands: int
    in_flight_at_kill: int
    results_at_kill: int
    seconds_to_finish_in_flight: float  # kill -> as many more results as were in flight
    seconds_to_finish_all: float  # kill -> a result for every command
    duplicates: int  # accepted creates beyond one per succeeded command
    dead_lettered: int


async def run(session: BenchSession) -> list[Figure]:
    result = await killed_mid_backlog(session, session.sizes.crash_commands)
    session.details[SCENARIO] = asdict(result)
    return [
        Figure.info(
            SCENARIO,
            f"in flight at the kill (prefetch 64, N={result.commands})",
            result.in_flight_at_kill,
        ),
        Figure.info(SCENARIO, "kill -> those finished", result.seconds_to_finish_in_flight, "s"),
        Figure.info(SCENARIO, "kill -> every command finished", result.seconds_to_finish_all, "s"),
        Figure.exactly(SCENARIO, "duplicates", result.duplicates, 0),
        Figure.exactly(SCENARIO, "dead-lettered", result.dead_lettered, 0),
    ]


async def killed_mid_backlog(session: BenchSession, count: int) -> CrashRun:
    workspace, sandbox = session.workspace, await session.sandbox()
    await sandbox.reset()
    topology = workspace.topology(SCENARIO)
    env = relay_env(
        workspace,
        topology,
        sandbox,
        http_port=free_port(),
        state_url=workspace.sqlite_state_url(topology.prefix),
        rate_limit=RATE,
    )
    first = RelayProcess.create(topology.prefix, env, workspace.path(f"{SCENARIO}-1.log"))
    second_env = {**env, "RELAY_HTTP_PORT": str(free_port()), "RELAY_ADMIN_PORT": str(free_port())}
    second = RelayProcess.create(topology.prefix, second_env, workspace.path(f"{SCENARIO}-2.log"))
    connection = await workspace.connect()
    try:
        tap = await ResultTap.declare(connection, workspace, topology)
        await publish_commands(connection, topology, count)
        await first.start()
        await first.wait_ready()
        await wait_for_consumer(connection, topology.messages_queue)
        await tap.wait_for(RESULTS_BEFORE_KILL, timeout=120, alive=first.child.ensure_running)
        in_flight = round(metric_total(await first.metrics(), "relay_commands_in_flight"))
        assert first.child.process is not None
        first.child.process.kill()
        await first.child.process.wait()
        killed_at = time.perf_counter()
        at_kill = await tap.depth()
        await second.start()
        await second.wait_ready()
        some = await tap.wait_for(
            at_kill + in_flight, timeout=600, alive=second.child.ensure_running
        )
        every = await tap.wait_for(count, timeout=600, alive=second.child.ensure_running)
        events = await tap.read(every.count)
        await tap.close()
    finally:
        await second.stop()
        await first.stop()
        await connection.close()
    accepted = [
        r for r in await sandbox.requests("/api/v1/messages/schedule") if r["status"] == 201
    ]
    succeeded = sum(1 for e in events if e.get("type") == "msgflash.message.scheduled")
    return CrashRun(
        commands=count,
        in_flight_at_kill=in_flight,
        results_at_kill=at_kill,
        seconds_to_finish_in_flight=some.last_at - killed_at,
        seconds_to_finish_all=every.last_at - killed_at,
        duplicates=len(accepted) - succeeded,
        dead_lettered=sum(1 for e in events if e.get("type") == "msgflash.message.failed"),
    )
