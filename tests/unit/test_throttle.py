"""Adaptive pacing: a rate-limit 429 halves a key's rate at most once a second, down to a floor;
accepted requests step it back to the configured rate; a Retry-After holds the key, capped."""

from __future__ import annotations

import pytest

from service.pacing import MICROSECONDS, LocalSlotBook, slot_interval_us
from service.throttle import (
    DECREASE_EVERY_SECONDS,
    FLOOR,
    MAX_PAUSE_SECONDS,
    STEP,
    Throttle,
    recovered,
    slowed,
)
from tests.clock import FakeClock

NOW = 1_000.0
RATE = 10.0
KEY = "msgf_live_" + "ef" * 32


def slowed_at(state: Throttle, *moments: float, retry_after: float | None = None) -> Throttle:
    for moment in moments:
        state = slowed(state, now=moment, retry_after=retry_after)
    return state


def recovered_times(state: Throttle, times: int) -> Throttle:
    for _ in range(times):
        state = recovered(state)
    return state


# --- the rules ------------------------------------------------------------------------------
def test_a_rate_limit_429_halves_the_rate() -> None:
    state = slowed_at(Throttle(), NOW)

    assert (state.factor, state.decreased_at, state.throttled) == (0.5, NOW, True)


def test_429s_within_a_second_of_a_decrease_answer_the_same_excess_and_halve_it_once() -> None:
    burst = slowed_at(Throttle(), NOW, NOW + 0.1, NOW + DECREASE_EVERY_SECONDS - 0.001)
    assert burst.factor == 0.5
    assert burst.decreased_at == NOW  # the burst does not push the next decrease further off

    assert slowed_at(burst, NOW + DECREASE_EVERY_SECONDS).factor == 0.25


def test_a_storm_that_never_ends_stops_at_the_floor() -> None:
    once_a_second = [NOW + second for second in range(20)]

    assert slowed_at(Throttle(), *once_a_second).factor == FLOOR == 1 / 32


@pytest.mark.parametrize(
    ("factor", "accepted", "expected"),
    [
        (0.5, 1, 0.5 + STEP),
        (0.5, 9, 0.5 + 9 * STEP),
        (0.5, 10, 1.0),  # back to the configured rate
        (0.5, 50, 1.0),  # and never above it
        (FLOOR, 19, FLOOR + 19 * STEP),
        (FLOOR, 20, 1.0),
    ],
)
def test_each_accepted_request_adds_a_step_of_the_configured_rate_back(
    factor: float, accepted: int, expected: float
) -> None:
    state = recovered_times(Throttle(factor=factor), accepted)

    assert state.factor == pytest.approx(expected)
    assert state.throttled is (expected < 1.0)


def test_a_retry_after_holds_the_key_until_it_has_passed() -> None:
    assert slowed_at(Throttle(), NOW, retry_after=5.0).pause_until == NOW + 5.0


@pytest.mark.parametrize("retry_after", [None, 0.0, -3.0])
def test_no_retry_after_holds_nothing(retry_after: float | None) -> None:
    assert slowed_at(Throttle(), NOW, retry_after=retry_after).pause_until == 0.0


def test_a_retry_after_is_capped_so_a_garbled_header_cannot_stop_a_key_for_hours() -> None:
    state = slowed_at(Throttle(), NOW, retry_after=86_400.0)

    assert state.pause_until == NOW + MAX_PAUSE_SECONDS == NOW + 60.0


def test_a_shorter_retry_after_never_cuts_a_longer_hold_short() -> None:
    state = slowed_at(Throttle(), NOW, retry_after=30.0)

    assert slowed_at(state, NOW + 1, retry_after=2.0).pause_until == NOW + 30.0


# --- applied to a slot book -----------------------------------------------------------------
INTERVAL = slot_interval_us(RATE)


async def spacing(book: LocalSlotBook, key: str = KEY) -> int:
    """Microseconds between two slots booked back to back."""
    first = await book.reserve(key)
    second = await book.reserve(key)
    return second.at_us - first.at_us


async def test_a_slowed_key_books_its_slots_twice_as_far_apart_and_recovers() -> None:
    clock = FakeClock(NOW)
    book = LocalSlotBook(RATE, clock=clock)
    assert await spacing(book) == INTERVAL

    await book.slow_down(KEY, None)
    assert await spacing(book) == 2 * INTERVAL
    assert await spacing(book, "another key") == INTERVAL

    for _ in range(9):
        await book.recovered(KEY)
    assert INTERVAL < await spacing(book) < 2 * INTERVAL
    await book.recovered(KEY)
    assert await spacing(book) == INTERVAL


async def test_a_retry_after_holds_every_slot_of_the_key_until_it_has_passed() -> None:
    clock = FakeClock(NOW)
    book = LocalSlotBook(RATE, clock=clock)

    await book.slow_down(KEY, 5.0)

    held = await book.reserve(KEY)
    assert held.at_us == round((NOW + 5.0) * MICROSECONDS)
    assert held.delay_seconds == 5.0
    clock.advance(5.0)
    assert (await book.reserve(KEY)).at_us == held.at_us + 2 * INTERVAL


async def test_a_slot_book_honours_no_retry_after_beyond_the_cap() -> None:
    clock = FakeClock(NOW)
    book = LocalSlotBook(RATE, clock=clock)

    await book.slow_down(KEY, 86_400.0)

    assert (await book.reserve(KEY)).delay_seconds == MAX_PAUSE_SECONDS
