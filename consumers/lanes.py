"""Per-account lanes: how many commands of one account may be in flight at once (contract §7).

A delivery from a shared queue whose account's lane is full is not kept waiting in the prefetch
window, where it would hold a slot another account needs: the pipeline moves it to the
account's own queue. Deliveries from that queue wait for a slot instead; the queue's prefetch
(the lane size) bounds how many wait. Waiting ones go first: a shared-queue delivery finds the
lane full while any of them waits, so the moved backlog is never overtaken for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from service.contract.amqp import Topology
from service.metrics import Metrics


class Lane:
    """One account's slots; ``queue`` takes the commands moved aside while it is full."""

    def __init__(self, account: str, size: int, queue: str, metrics: Metrics) -> None:
        self.account = account
        self.size = size
        self.queue = queue
        self._slots = asyncio.Semaphore(size)
        self._in_flight = 0
        self._moved = metrics.account_moved.labels(account)
        metrics.account_in_flight.labels(account).set_function(lambda: self._in_flight)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def enter(self, *, wait: bool) -> bool:
        """Take a slot; without ``wait``, False at once when none is free (or one is awaited).

        Not locked means the acquire completes without suspending, so nothing runs between the
        check and the slot being taken.
        """
        if not wait and self._slots.locked():
            return False
        await self._slots.acquire()
        self._in_flight += 1
        return True

    def leave(self) -> None:
        self._in_flight -= 1
        self._slots.release()

    def moved(self) -> None:
        self._moved.inc()


class Lanes:
    """Every account's lane; none when lanes are off (size 0) or the account is unknown (its
    commands fail ``ACCOUNT_NOT_FOUND`` without calling anyone: nothing to bound)."""

    def __init__(
        self, accounts: Iterable[str], size: int, topology: Topology, metrics: Metrics
    ) -> None:
        self.size = size
        self._lanes = (
            {name: Lane(name, size, topology.account_queue(name), metrics) for name in accounts}
            if size > 0
            else {}
        )

    def __call__(self, account: str) -> Lane | None:
        return self._lanes.get(account)

    def __iter__(self) -> Iterator[Lane]:
        return iter(self._lanes.values())
