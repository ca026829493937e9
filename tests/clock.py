"""The one fake clock of the suite: time that moves only when a test moves it."""

from __future__ import annotations


class FakeClock:
    """Seconds (epoch-like by default) that change only when a test sets or advances them;
    callable like ``time.time`` or ``time.monotonic``."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
