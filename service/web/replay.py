"""How old a signed webhook delivery may be before it is a replay. Pure.

MsgFlash signs the body only, with no timestamp header, so a captured delivery verifies
forever. The payload's own ``timestamp`` is inside the signed bytes: a delivery older than the
tolerance is refused, and one within it is caught by the dedupe memory, which therefore lasts
at least as long (``dedupe_seconds``).

A delivery with no ``timestamp`` at all is taken by default: one of MsgFlash's own documented
payload shapes carries none, and refusing those would lose every delivery status for good
after MsgFlash's last retry. Only the dedupe memory guards it, so a capture replayed once that
memory has passed is taken again; ``require_timestamp`` (RELAY_WEBHOOK_REQUIRE_TIMESTAMP)
refuses such deliveries instead. One whose ``timestamp`` is there but unreadable is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

# How far ahead of the relay's clock MsgFlash's may run before a timestamp is refused.
FUTURE_SKEW_SECONDS = 300.0


def stated_time(payload: Mapping[str, Any]) -> object:
    """The payload's ``timestamp`` as sent (flat shape, or under ``data`` in the nested one)."""
    nested = payload.get("data")
    value = payload.get("timestamp")
    if value is None and isinstance(nested, Mapping):
        value = nested.get("timestamp")
    return value


def delivery_time(payload: Mapping[str, Any]) -> datetime | None:
    """The payload's ``timestamp`` in UTC, or None when it is absent or unreadable."""
    value = stated_time(payload)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def freshness_problem(
    payload: Mapping[str, Any],
    now: datetime,
    tolerance_seconds: float,
    *,
    require_timestamp: bool = False,
) -> tuple[str, str] | None:
    """``(code, message)`` when the delivery must be refused as a possible replay, else None."""
    if stated_time(payload) is None:
        if require_timestamp:
            return (
                "INVALID_PAYLOAD",
                "the payload has no `timestamp`: refused, since RELAY_WEBHOOK_REQUIRE_TIMESTAMP "
                "is on and an undated delivery could be replayed once its dedupe window passed",
            )
        return None  # undated: taken, and caught by the dedupe memory if repeated
    moment = delivery_time(payload)
    if moment is None:
        return (
            "INVALID_PAYLOAD",
            "the payload `timestamp` is not an ISO 8601 date-time: refused, since its age "
            "cannot be told",
        )
    if now - moment > timedelta(seconds=tolerance_seconds):
        return (
            "STALE_DELIVERY",
            f"the payload `timestamp` is more than {tolerance_seconds:g} s old "
            "(RELAY_WEBHOOK_TOLERANCE_SECONDS): refused as a possible replay",
        )
    if moment - now > timedelta(seconds=FUTURE_SKEW_SECONDS):
        return (
            "STALE_DELIVERY",
            f"the payload `timestamp` is more than {FUTURE_SKEW_SECONDS:g} s in the future: "
            "check the clocks, or this is a forged delivery",
        )
    return None


def dedupe_seconds(configured: float, tolerance_seconds: float) -> float:
    """How long a delivery is remembered: never less than a replay could still be accepted."""
    return max(configured, tolerance_seconds + FUTURE_SKEW_SECONDS)
