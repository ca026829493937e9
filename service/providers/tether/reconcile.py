"""Finding a campaign an unanswered create may have made, in ``GET /api/campaigns``. Pure.

Tether has no idempotency key, so before a create is sent again the relay looks for a campaign
that matches what it sent: same name and message, same recipients, same schedule, created no
earlier than the lost attempt (less a clock-skew allowance). The list's shape is not documented:
a bare list, ``{data: [...]}`` and ``{campaigns: [...]}`` are all read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from service.providers.tether.api import read_instant
from service.providers.tether.mapping import recipient_key

# Tether's clock and ours may differ by this much.
CLOCK_SKEW = timedelta(seconds=30)


def campaigns_in(document: Any) -> list[dict[str, Any]]:
    """The campaign objects of a list answer, whatever its envelope."""
    items = document
    if isinstance(document, Mapping):
        items = document.get("data", document.get("campaigns"))
        if isinstance(items, Mapping):  # {data: {campaigns: [...]}}
            items = items.get("campaigns")
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def matches(campaign: Mapping[str, Any], body: Mapping[str, Any], since: datetime) -> bool:
    """Is ``campaign`` the one ``body`` would have created at or after ``since``?"""
    if campaign.get("name") != body.get("name") or campaign.get("message") != body.get("message"):
        return False
    if "scheduleDate" in body and not _same_instant(
        campaign.get("scheduleDate"), body["scheduleDate"]
    ):
        return False
    if recipients(campaign) != recipients(body):
        return False
    created = read_instant(campaign.get("createdAt"))
    return created is None or created >= since - CLOCK_SKEW


def find_created_campaign(
    campaigns: Sequence[Mapping[str, Any]], body: Mapping[str, Any], since: datetime
) -> dict[str, Any] | None:
    """The newest campaign that matches ``body``, or None."""
    found = [dict(c) for c in campaigns if matches(c, body, since)]
    found.sort(key=lambda c: str(c.get("createdAt") or ""))
    return found[-1] if found else None


def find_segments(
    campaigns: Sequence[Mapping[str, Any]], name: str, message: str, since: datetime
) -> list[dict[str, Any]]:
    """The parts (``name (k/n)``) of a split campaign created at or after ``since``, in order."""
    part = re.compile(rf"^{re.escape(name)} \((\d+)/\d+\)$")
    found: list[tuple[int, dict[str, Any]]] = []
    for campaign in campaigns:
        matched = part.match(str(campaign.get("name", "")))
        created = read_instant(campaign.get("createdAt"))
        recent = created is None or created >= since - CLOCK_SKEW
        if matched and campaign.get("message") == message and recent:
            found.append((int(matched.group(1)), dict(campaign)))
    return [campaign for _, campaign in sorted(found, key=lambda pair: pair[0])]


def recipients(document: Mapping[str, Any]) -> frozenset[str]:
    """The recipient keys of a create body or a campaign object."""
    keys: set[str] = set()
    for field in ("newContacts", "selectedExistingContacts"):
        items = document.get(field)
        if isinstance(items, list):
            keys.update(recipient_key(item) for item in items if isinstance(item, dict))
    return frozenset(keys)


def _same_instant(left: object, right: object) -> bool:
    a, b = read_instant(left), read_instant(right)
    return a is not None and a == b
