"""Per-account lanes: how many commands of one account may be in flight at once (contract §7).

An account has a lane per provider: a Tether outage holds Tether commands in flight for as long
as their retries last, and must not take the slots of the same account's MsgFlash commands.
A delivery from a shared queue whose account's lane is full is not kept waiting in the prefetch
window, where it would hold a slot another account needs: the pipeline moves it to the
account's own queue. Deliveries from that queue wait for a slot instead; the queue's prefetch
(the lane size) bounds how many wait. Waiting ones go first: a shared-queue delivery finds the
lane full while any of them waits, so the moved backlog is never overtaken for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

from service.contract.amqp import Topology
from service.metrics import Metrics


def lane_sizes(account_in_flight: int, tether_prefetch: int) -> dict[str, int]:
    """Each provider's lane size: ``RELAY_ACCOUNT_IN_FLIGHT``, and for Tether no more than half
    ``RELAY_TETHER_PREFETCH``. A Tether lane as large as that prefetch would let one Tether
    account's outage hold every delivery of the Tether queue, and other accounts' wait behind."""
    return {
        "msgflash": account_in_flight,
        "tether": min(account_in_flight, max(1, tether_prefetch // 2)),
    }


class Lane:
    """One account's slots for one provider's commands; ``queue`` takes the commands moved
    aside while it is full."""

    def __init__(
        self, account: str, provider: str, size: int, queue: str, metrics: Metrics
    ) -> None:
        self.account = account
        self.provider = provider
        self.size = size
        self.queue = queue
        self._slots = asyncio.Semaphore(size)
        self._in_flight = 0
        self._moved = metrics.account_moved.labels(account, provider)
        metrics.account_in_flight.labels(account, provider).set_function(lambda: self._in_flight)

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
    """Every account's lane for each provider it serves; none when lanes are off (no account
    queues), or for an account the provider does not know (its commands fail without calling
    anyone: nothing to bound)."""

    def __init__(self, topology: Topology, sizes: Mapping[str, int], metrics: Metrics) -> None:
        """``sizes``: each provider's lane size."""
        self._lanes = {
            (account, provider): Lane(
                account,
                provider,
                sizes[provider],
                topology.account_queue(account, provider),
                metrics,
            )
            for account, provider in topology.account_lanes
        }

    def __call__(self, account: str, provider: str) -> Lane | None:
        return self._lanes.get((account, provider))

    def __iter__(self) -> Iterator[Lane]:
        return iter(self._lanes.values())
