"""Lanes bound each account's in-flight commands; what waits for a slot goes before what
would take a free one from a shared queue."""

from __future__ import annotations

import asyncio

from consumers.lanes import Lane, Lanes
from service.contract.amqp import Topology
from service.metrics import Metrics


def lane(size: int = 2) -> Lane:
    return Lane("acme", size, "msgflash.account.acme", Metrics())


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


async def test_in_flight_and_moves_are_metrics_labelled_by_account() -> None:
    metrics = Metrics()
    acme = Lane("acme", 4, "q", metrics)
    await acme.enter(wait=False)
    acme.moved()
    text = metrics.render().decode()
    assert 'relay_account_in_flight{account="acme"} 1.0' in text
    assert 'relay_account_moved_total{account="acme"} 1.0' in text


def test_lanes_are_the_named_accounts_each_with_its_own_queue() -> None:
    topology = Topology(prefix="p", accounts=("acme", "default"))
    lanes = Lanes(topology.accounts, 3, topology, Metrics())
    acme = lanes("acme")
    assert acme is not None and (acme.queue, acme.size) == ("p.account.acme", 3)
    assert lanes("nobody") is None
    assert [each.account for each in lanes] == ["acme", "default"]
    assert "p.account.default" in topology.queues()


def test_no_lanes_when_the_size_is_zero() -> None:
    topology = Topology(prefix="p", accounts=("acme",))
    assert Lanes(topology.accounts, 0, topology, Metrics())("acme") is None
