"""Instance resolution: the pure choice, then the cached resolver around it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

import pytest

from service.contract.errors import INSTANCE_AMBIGUOUS, INSTANCE_NOT_FOUND, InstanceResolutionError
from service.providers.msgflash.instances import InstanceResolver, choose_instance, is_instance_id
from tests.clock import FakeClock

if TYPE_CHECKING:
    from service.providers.msgflash.client import MsgFlashClient

MAIN = "00000000-0000-4000-8000-0000000000a1"
BACKUP = "00000000-0000-4000-8000-0000000000a4"
OTHER = "00000000-0000-4000-8000-0000000000b1"


def instance(id_: str, name: str, wa: str | None, status: str = "connected") -> dict[str, Any]:
    return {"id": id_, "name": name, "waNumber": wa, "status": status}


FLEET = [
    instance(MAIN, "main", "+2250700000001"),
    instance(BACKUP, "backup", "2250700000004", "connecting"),
]


def test_an_exact_name_selects_its_instance() -> None:
    assert choose_instance(FLEET, "backup") == BACKUP


def test_names_are_compared_exactly() -> None:
    with pytest.raises(InstanceResolutionError) as raised:
        choose_instance(FLEET, "Main")
    assert raised.value.code == INSTANCE_NOT_FOUND


@pytest.mark.parametrize("wanted", ["+2250700000001", "2250700000001", "+225 07 00 00 00 01"])
def test_a_wa_number_matches_on_digits_whatever_its_punctuation(wanted: str) -> None:
    assert choose_instance(FLEET, wanted) == MAIN


def test_a_number_stored_without_plus_matches_one_given_with_plus() -> None:
    assert choose_instance(FLEET, "+2250700000004") == BACKUP


def test_instances_without_a_number_never_match_a_number() -> None:
    fleet = [instance(MAIN, "main", None)]
    with pytest.raises(InstanceResolutionError):
        choose_instance(fleet, "+2250700000001")


def test_no_match_names_what_was_wanted_and_what_to_do() -> None:
    with pytest.raises(InstanceResolutionError) as raised:
        choose_instance(FLEET, "sales")
    assert raised.value.code == INSTANCE_NOT_FOUND
    assert "'sales'" in raised.value.message
    assert "instanceId" in raised.value.message


def test_no_instances_at_all_is_not_found() -> None:
    with pytest.raises(InstanceResolutionError) as raised:
        choose_instance([], "main")
    assert raised.value.code == INSTANCE_NOT_FOUND


def test_of_several_matches_the_only_connected_one_wins() -> None:
    fleet = [
        instance(OTHER, "sales", "+2250700000009", "disconnected"),
        instance(MAIN, "sales", "+2250700000001"),
        instance(BACKUP, "sales", "+2250700000004", "connecting"),
    ]
    assert choose_instance(fleet, "sales") == MAIN


def test_a_name_and_a_number_matching_different_instances_prefer_the_connected_one() -> None:
    fleet = [
        instance(OTHER, "2250700000001", None, "disconnected"),
        instance(MAIN, "main", "+2250700000001"),
    ]
    assert choose_instance(fleet, "2250700000001") == MAIN


def test_several_connected_matches_are_ambiguous_and_list_only_the_connected_ids() -> None:
    fleet = [
        instance(MAIN, "sales", "+2250700000001"),
        instance(BACKUP, "sales", "+2250700000004"),
        instance(OTHER, "sales", None, "disconnected"),
    ]
    with pytest.raises(InstanceResolutionError) as raised:
        choose_instance(fleet, "sales")
    assert raised.value.code == INSTANCE_AMBIGUOUS
    assert MAIN in raised.value.message and BACKUP in raised.value.message
    assert OTHER not in raised.value.message
    assert "instanceId" in raised.value.message


def test_several_matches_none_connected_are_ambiguous_and_list_them_all() -> None:
    fleet = [
        instance(MAIN, "sales", None, "disconnected"),
        instance(BACKUP, "sales", None, "connecting"),
    ]
    with pytest.raises(InstanceResolutionError) as raised:
        choose_instance(fleet, "sales")
    assert raised.value.code == INSTANCE_AMBIGUOUS
    assert MAIN in raised.value.message and BACKUP in raised.value.message


def test_only_uuids_are_taken_for_instance_ids() -> None:
    assert is_instance_id(MAIN)
    assert not is_instance_id("main")
    assert not is_instance_id("+2250700000001")


class FakeInstances:
    """Stands in for MsgFlashClient.list_instances: counts fetches, can be held open."""

    def __init__(self, *fleets: list[dict[str, Any]]) -> None:
        self.fleets = list(fleets)
        self.fetches = 0
        self.release = asyncio.Event()
        self.release.set()

    async def list_instances(self) -> list[dict[str, Any]]:
        self.fetches += 1
        await self.release.wait()
        return self.fleets[min(self.fetches, len(self.fleets)) - 1]


def resolver(
    fake: FakeInstances,
    *,
    default: str | None = None,
    clock: FakeClock | None = None,
    ttl: float = 30.0,
) -> InstanceResolver:
    return InstanceResolver(
        cast("MsgFlashClient", fake),
        ttl_seconds=ttl,
        default_instance=default,
        clock=clock or FakeClock(1000.0),
    )


async def test_an_instance_id_is_returned_as_is_without_a_call() -> None:
    fake = FakeInstances(FLEET)
    assert await resolver(fake).resolve(instance_id=OTHER, instance="main") == OTHER
    assert fake.fetches == 0


async def test_a_name_is_resolved_through_the_instance_list() -> None:
    fake = FakeInstances(FLEET)
    assert await resolver(fake).resolve(instance_id=None, instance="main") == MAIN


async def test_the_list_is_cached_for_the_ttl_then_fetched_again() -> None:
    fake, clock = FakeInstances(FLEET), FakeClock(1000.0)
    names = resolver(fake, clock=clock, ttl=30.0)
    await names.resolve(instance_id=None, instance="main")
    clock.now += 29.0
    await names.resolve(instance_id=None, instance="backup")
    assert fake.fetches == 1
    clock.now += 1.0
    await names.resolve(instance_id=None, instance="main")
    assert fake.fetches == 2


async def test_concurrent_callers_share_one_fetch() -> None:
    fake = FakeInstances(FLEET)
    fake.release.clear()
    names = resolver(fake, ttl=0.0)
    pending = [
        asyncio.create_task(names.resolve(instance_id=None, instance=wanted))
        for wanted in ("main", "backup", "main")
    ]
    await asyncio.sleep(0)
    fake.release.set()
    assert await asyncio.gather(*pending) == [MAIN, BACKUP, MAIN]
    assert fake.fetches == 1


async def test_a_cache_miss_refreshes_once_and_finds_a_new_instance() -> None:
    grown = [*FLEET, instance(OTHER, "sales", None)]
    fake = FakeInstances(FLEET, grown)
    names = resolver(fake)
    await names.resolve(instance_id=None, instance="main")
    assert await names.resolve(instance_id=None, instance="sales") == OTHER
    assert fake.fetches == 2


async def test_a_name_missing_after_the_refresh_is_not_found() -> None:
    fake = FakeInstances(FLEET)
    names = resolver(fake)
    await names.resolve(instance_id=None, instance="main")
    with pytest.raises(InstanceResolutionError) as raised:
        await names.resolve(instance_id=None, instance="sales")
    assert raised.value.code == INSTANCE_NOT_FOUND
    assert fake.fetches == 2


async def test_a_list_fetched_for_this_very_call_is_not_fetched_again_on_a_miss() -> None:
    fake = FakeInstances(FLEET)
    with pytest.raises(InstanceResolutionError):
        await resolver(fake).resolve(instance_id=None, instance="sales")
    assert fake.fetches == 1


async def test_an_ambiguous_name_does_not_trigger_a_refresh() -> None:
    twins = [instance(MAIN, "sales", None), instance(BACKUP, "sales", None)]
    fake = FakeInstances(twins)
    names = resolver(fake)
    with pytest.raises(InstanceResolutionError):
        await names.resolve(instance_id=None, instance="sales")
    with pytest.raises(InstanceResolutionError) as raised:
        await names.resolve(instance_id=None, instance="sales")
    assert raised.value.code == INSTANCE_AMBIGUOUS
    assert fake.fetches == 1


async def test_no_instance_named_falls_back_to_a_default_uuid_without_a_call() -> None:
    fake = FakeInstances(FLEET)
    assert await resolver(fake, default=BACKUP).resolve(instance_id=None, instance=None) == BACKUP
    assert fake.fetches == 0


async def test_a_default_that_is_a_name_is_resolved_like_one() -> None:
    fake = FakeInstances(FLEET)
    assert await resolver(fake, default="main").resolve(instance_id=None, instance=None) == MAIN


async def test_no_instance_and_no_default_tells_producer_and_operator_what_to_set() -> None:
    with pytest.raises(InstanceResolutionError) as raised:
        await resolver(FakeInstances(FLEET)).resolve(instance_id=None, instance=None)
    assert raised.value.code == INSTANCE_NOT_FOUND
    for hint in ("instanceId", "instance", "RELAY_DEFAULT_INSTANCE"):
        assert hint in raised.value.message
