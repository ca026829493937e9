"""The organisation's daily SMS quota (fact sheet C8-C11, rule R8). Pure.

A scheduled campaign reserves its recipients on the org-local date of its ``scheduleDate``;
usage of a date = sent + reserved. validate-date, next-available-slot and auto-segment read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

SEARCH_DAYS = 366


@dataclass(frozen=True, slots=True)
class Reservation:
    campaign_id: str
    day: date
    count: int


@dataclass(frozen=True, slots=True)
class Ledger:
    daily_limit: int | None  # None: unlimited
    zone: ZoneInfo
    reservations: tuple[Reservation, ...]
    sent: Mapping[date, int]

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def used(self, day: date, *, exclude: str | None = None) -> int:
        reserved = sum(
            r.count for r in self.reservations if r.day == day and r.campaign_id != exclude
        )
        return self.sent.get(day, 0) + reserved

    def remaining(self, day: date, *, exclude: str | None = None) -> int | None:
        if self.daily_limit is None:
            return None
        return max(self.daily_limit - self.used(day, exclude=exclude), 0)

    def fits(self, day: date, count: int, *, exclude: str | None = None) -> bool:
        left = self.remaining(day, exclude=exclude)
        return left is None or left >= count

    def next_available(self, start: date, count: int) -> date | None:
        for offset in range(SEARCH_DAYS):
            day = start + timedelta(days=offset)
            if self.fits(day, count):
                return day
        return None

    def segments(
        self, total: int, first: date, at: time, *, zone: tzinfo, unlimited_size: int
    ) -> list[tuple[datetime, int]]:
        """Split ``total`` over days from ``first``, skipping full days, each at ``at`` in
        ``zone``."""
        plan: list[tuple[datetime, int]] = []
        left, day = total, first
        for _ in range(SEARCH_DAYS):
            if left <= 0:
                break
            room = self.remaining(day)
            take = min(left, unlimited_size if room is None else room)
            if take > 0:
                plan.append((datetime.combine(day, at, tzinfo=zone), take))
                left -= take
            day += timedelta(days=1)
        return plan


def reservations_of(
    campaigns: Iterable[Mapping[str, object]], zone: ZoneInfo
) -> tuple[Reservation, ...]:
    found: list[Reservation] = []
    for campaign in campaigns:
        when = campaign.get("scheduleDate")
        stats = campaign.get("stats")
        if campaign.get("status") != "scheduled" or not isinstance(when, str):
            continue
        total = stats.get("total") if isinstance(stats, Mapping) else 0
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
        found.append(
            Reservation(str(campaign["_id"]), moment.astimezone(zone).date(), int(total or 0))
        )
    return tuple(found)
