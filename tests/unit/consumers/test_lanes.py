"""Lanes bound each account's in-flight commands, per provider; what waits for a slot goes
before what would take a free one from a shared queue."""

from __future__ import annotations

import asyncio

import pytest

from consumers.lanes import Lane, Lanes, lane_sizes
from service.contract.amqp import Topology
from service.metrics import Metrics


def lane(size: int = 2) -> Lane:
    return Lane("acme", "msgflash", size, "msgflash.account.acme", Metrics())


async def test_a_full_lane_refuses_at_once_without_wait() -> None:
    acme = lane(size=2)
    assert await acme.enter(wait=False)
    assert await acme.enter(wait=False)
    assert not await acme.enter(wait=False)
    assert acme.in_flight == 2


async def test_a_freed_slot_goes_to_the_waiting_delivery_not_to_a_newcomer() -> None:
    acme = lane(size=1)
    assert await acme.enter(wait=False)
    waiting = asyncio.create_task(acme.enter(wait=True))
    await asyncio.sleep(0)  # the waiter queues up
    acme.leave()
    assert not await acme.enter(wait=False)
    assert await waiting
    assert acme.in_flight == 1


async def test_in_flight_and_moves_are_metrics_labelled_by_account_and_provider() -> None:
    metrics = Metrics()
    acme = Lane("acme", "tether", 4, "q", metrics)
    await acme.enter(wait=False)
    acme.moved()
    text = metrics.render().decode()
    assert 'relay_account_in_flight{account="acme",provider="tether"} 1.0' in text
    assert 'relay_account_moved_total{account="acme",provider="tether"} 1.0' in text


def test_each_provider_of_an_account_has_a_lane_and_a_queue_of_its_own() -> None:
    topology = Topology(prefix="p", accounts=("acme", "default"), tether_accounts=("default",))
    lanes = Lanes(topology, {"msgflash": 3, "tether": 2}, Metrics())
    acme = lanes("acme", "msgflash")
    assert acme is not None and (acme.queue, acme.size) == ("p.account.acme", 3)
    tether = lanes("default", "tether")
    assert tether is not None and (tether.queue, tether.size) == ("p.account.default.tether", 2)
    assert tether is not lanes("default", "msgflash")
    assert lanes("acme", "tether") is None and lanes("nobody", "msgflash") is None
    assert [(each.account, each.provider) for each in lanes] == [
        ("acme", "msgflash"),
        ("default", "msgflash"),
        ("default", "tether"),
    ]
    assert {"p.account.default", "p.account.default.tether"} <= set(topology.queues())


async def test_a_full_tether_lane_leaves_the_msgflash_lane_of_the_same_account_free() -> None:
    topology = Topology(prefix="p", accounts=("default",), tether_accounts=("default",))
    lanes = Lanes(topology, {"msgflash": 1, "tether": 1}, Metrics())
    tether, msgflash = lanes("default", "tether"), lanes("default", "msgflash")
    assert tether is not None and msgflash is not None
    assert await tether.enter(wait=False)
    assert not await tether.enter(wait=False)
    assert await msgflash.enter(wait=False)


def test_no_lanes_without_account_queues() -> None:
    assert Lanes(Topology(prefix="p"), {"msgflash": 3}, Metrics())("default", "msgflash") is None


@pytest.mark.parametrize(
    ("in_flight", "tether_prefetch", "sizes"),
    [
        (16, 8, {"msgflash": 16, "tether": 4}),
        (2, 8, {"msgflash": 2, "tether": 2}),
        (16, 1, {"msgflash": 16, "tether": 1}),
    ],
)
def test_a_tether_lane_is_at_most_half_the_tether_prefetch(
    in_flight: int, tether_prefetch: int, sizes: dict[str, int]
) -> None:
    assert lane_sizes(in_flight, tether_prefetch) == sizes
