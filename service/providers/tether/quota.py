"""Tether's daily SMS quota, as pure decisions over its answers.

``check`` asks ``POST /api/campaigns/validate-date`` whether the recipients fit on the
campaign's date; when they do not, the command fails naming the first date on or after it with
room. ``GET /api/campaigns/next-available-slot`` counts from today, so its date is used only
when it is not before the campaign's; otherwise the next few days are asked one by one.
``segment`` asks ``POST /api/campaigns/auto-segment`` how to spread the recipients over days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.contract.errors import (
    TETHER_BAD_RESPONSE,
    TETHER_DAILY_QUOTA_EXCEEDED,
    FieldProblem,
    TetherError,
)
from service.contract.wire import utc_millis
from service.providers.tether.api import read_instant

# How many days after a full one are asked about when next-available-slot's date is earlier
# than the campaign's: one validate-date call each.
LOOKAHEAD_DAYS = 7


def validate_date_body(when: datetime, count: int) -> dict[str, Any]:
    return {"scheduledISO": utc_millis(when), "contactCount": count}


def fits(answer: Mapping[str, Any]) -> bool:
    """validate-date's verdict; an answer without a boolean ``available`` is not trusted."""
    available = answer.get("available")
    if not isinstance(available, bool):
        raise TetherError(
            TETHER_BAD_RESPONSE,
            "Tether's validate-date answer has no boolean `available`; set the command's "
            '`quota` to "skip" to create without the check',
        )
    return available


def org_zone(slot: Mapping[str, Any]) -> tzinfo:
    """The zone of Tether's quota dates: next-available-slot's ``timezone``, else UTC."""
    name = slot.get("timezone")
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def slot_date(slot: Mapping[str, Any], when: datetime) -> str | None:
    """next-available-slot's date, as Tether wrote it, if it can stand for ``when``'s: it
    counts from today, so for a later day it may name an earlier one, which is no answer."""
    named = slot.get("nextAvailableDate")
    if not isinstance(named, str):
        return None
    zone = org_zone(slot)
    day = _day_of(named, zone)
    return named if day is not None and day >= when.astimezone(zone).date() else None


def _day_of(value: str, zone: tzinfo) -> date | None:
    """A date Tether wrote: ``YYYY-MM-DD`` as documented, or the local date of a date-time."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        moment = read_instant(value)
        return moment.astimezone(zone).date() if moment is not None else None


def days_after(when: datetime, zone: tzinfo) -> tuple[datetime, ...]:
    """``when``'s local time on each of the ``LOOKAHEAD_DAYS`` days after its own, in order."""
    local = when.astimezone(zone)
    return tuple(
        datetime.combine(local.date() + timedelta(days=n), local.time(), tzinfo=zone)
        for n in range(1, LOOKAHEAD_DAYS + 1)
    )


def quota_exceeded(
    when: datetime, count: int, verdict: Mapping[str, Any], next_date: str | None
) -> TetherError:
    """The failure of a campaign that does not fit its day, naming the first day on or after
    it that would (None: none found): the date is in the message for people and in the
    ``scheduleDate`` problem for programs."""
    remaining, limit = verdict.get("remaining"), verdict.get("limit")
    reason = verdict.get("message") or f"only {remaining} SMS left on that day"
    room = f"{remaining} of the day's {limit} SMS left" if _counts(remaining, limit) else None
    hint = (
        f"the next date with room for {count} is {next_date}: set `scheduleDate` to it, "
        if next_date is not None
        else f"no date with room for them was found on or after it (Tether's next available "
        f"date counts from today; the {LOOKAHEAD_DAYS} days after it have no room either): "
    )
    extra = (("nextAvailableDate", next_date),) if next_date is not None else ()
    problem = FieldProblem("data.scheduleDate", str(reason), extra)
    return TetherError(
        TETHER_DAILY_QUOTA_EXCEEDED,
        f"Tether's daily SMS quota has no room for {count} recipients on {utc_millis(when)} "
        f"({reason}{'; ' + room if room else ''}); {hint}"
        'or set `quota` to "segment" to spread them over days',
        details=(problem,),
    )


def _counts(*values: object) -> bool:
    return all(isinstance(value, int) for value in values)


def auto_segment_body(when: datetime, total: int) -> dict[str, Any]:
    """Tether reads the first date and time as the browser's local ones; the relay's are UTC
    (``segment_plan`` copes with a Tether that reads them in another zone)."""
    moment = when.astimezone(UTC)
    return {
        "totalContacts": total,
        "firstSegmentDate": moment.strftime("%Y-%m-%d"),
        "firstSegmentTime": moment.strftime("%H:%M"),
    }


@dataclass(frozen=True, slots=True)
class Segment:
    schedule: datetime
    count: int


def segment_plan(answer: Mapping[str, Any], total: int, *, asked: datetime) -> tuple[Segment, ...]:
    """auto-segment's segments, checked to cover exactly ``total`` recipients, each at the
    ``asked`` time of day on the day Tether chose for it."""
    items = answer.get("segments")
    plan: list[Segment] = []
    for item in items if isinstance(items, list) else []:
        count = item.get("contactCount") if isinstance(item, dict) else None
        when = read_instant(item.get("scheduledDate")) if isinstance(item, dict) else None
        if isinstance(count, int) and count > 0 and when is not None:
            plan.append(Segment(_at_asked_time(when, asked), count))
    if not plan or sum(s.count for s in plan) != total:
        raise TetherError(
            TETHER_BAD_RESPONSE,
            f"Tether's auto-segment answer does not split {total} recipients into dated "
            f"segments (got {len(plan)} usable segments); nothing was created",
        )
    return tuple(plan)


def _at_asked_time(segment: datetime, asked: datetime) -> datetime:
    """Tether reads ``firstSegmentTime`` in a zone it does not document ("browser-local"; its
    own example fits neither UTC nor the organisation's zone), so a segment may come back that
    zone's offset away from the time asked. The whole days between them are what it decided."""
    return asked + timedelta(days=round((segment - asked) / timedelta(days=1)))
