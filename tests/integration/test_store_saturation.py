"""A saturated relay batches its SQLite commits more widely, and narrows again once it is not.

Real broker, real sandbox and a real SQLite file: the sandbox answers slowly, so deliveries
pile up to the prefetch while the relay waits on MsgFlash.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.state.sqlite import SqliteStateStore
from service.state.sqlite_writer import COMMIT_WINDOW_SECONDS, SATURATED_COMMIT_WINDOW_SECONDS
from tests.conftest import EventTap, Producer, RelayFactory, SandboxHandle, text_command

PREFETCH = 16
COMMANDS = 40


async def test_the_commit_window_widens_while_deliveries_pile_up_and_narrows_after(
    relay_factory: RelayFactory,
    producer: Producer,
    events: EventTap,
    sandbox: SandboxHandle,
    tmp_path: Path,
) -> None:
    await sandbox.set_faults(latency_ms=400)
    relay = await relay_factory(
        relay_state_url=f"sqlite:///{tmp_path / 'state.db'}",
        relay_prefetch=PREFETCH,
        msgflash_rate_limit=1000,
    )
    store = relay.store
    assert isinstance(store, SqliteStateStore)
    assert store.commit_window == COMMIT_WINDOW_SECONDS

    for n in range(COMMANDS):
        await producer.publish(text_command(f"saturation {n}"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while relay.pipeline.in_flight < PREFETCH:
        assert loop.time() < deadline, f"only {relay.pipeline.in_flight} in flight"
        await asyncio.sleep(0.01)
    assert store.commit_window == SATURATED_COMMIT_WINDOW_SECONDS

    await events.wait_for(lambda e: e["type"] == "msgflash.message.sent", count=COMMANDS)
    # The last event is published before its command is acked and leaves the pipeline.
    deadline = loop.time() + 15
    while relay.pipeline.in_flight:
        assert loop.time() < deadline, f"{relay.pipeline.in_flight} still in flight"
        await asyncio.sleep(0.01)
    assert store.commit_window == COMMIT_WINDOW_SECONDS
