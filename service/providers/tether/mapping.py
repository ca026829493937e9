"""``tether.campaign.create`` data -> the body of ``POST /api/campaigns``. Pure.

The command already uses Tether's names, so mapping is mostly dropping the relay's own field
(``quota``) and writing times as Tether does (UTC, milliseconds). A campaign split over days is
one body per segment: the segment's recipients, its date, and a name that says which part it
is, so each part can be found again in Tether's campaign list.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from service.contract.tether import ExistingContact, NewContact, TetherCampaignData
from service.contract.wire import utc_millis

Recipient = NewContact | ExistingContact


def recipients_of(data: TetherCampaignData) -> tuple[Recipient, ...]:
    """Every recipient in a fixed order: new contacts first, then existing ones."""
    return (*data.new_contacts, *data.selected_existing_contacts)


def recipient_key(recipient: Recipient | dict[str, Any]) -> str:
    """What identifies a recipient in a body or in Tether's campaign object: id, else phone."""
    if isinstance(recipient, ExistingContact):
        return f"id:{recipient.id}"
    if isinstance(recipient, NewContact):
        return f"phone:{recipient.phone_number}"
    if isinstance(recipient.get("_id"), str):
        return f"id:{recipient['_id']}"
    return f"phone:{recipient.get('phoneNumber')}"


def to_campaign_body(
    data: TetherCampaignData,
    *,
    recipients: Sequence[Recipient] | None = None,
    schedule: datetime | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The create body; ``recipients``, ``schedule`` and ``name`` override for a segment."""
    chosen = recipients_of(data) if recipients is None else tuple(recipients)
    when = schedule or data.schedule_date
    body: dict[str, Any] = {
        "name": name or data.name,
        "message": data.message,
        "newContacts": [_dump(r) for r in chosen if isinstance(r, NewContact)],
        "selectedExistingContacts": [_dump(r) for r in chosen if isinstance(r, ExistingContact)],
        "type": data.type,
        "isAutopilot": data.is_autopilot,
    }
    if when is not None:
        body["scheduleDate"] = utc_millis(when)
    for key, value in (
        ("process", data.process),
        ("segmentation", data.segmentation),
        ("assignment", data.assignment),
    ):
        if value is not None:
            body[key] = value
    return body


def segment_name(name: str, index: int, total: int) -> str:
    """``Launch (2/3)``: distinct per part, so a lost answer can be matched to its part."""
    return f"{name} ({index}/{total})"


def split(
    recipients: Sequence[Recipient], counts: Sequence[int]
) -> tuple[tuple[Recipient, ...], ...]:
    """Consecutive slices of ``recipients`` of the given sizes (which must add up to it)."""
    if sum(counts) != len(recipients) or any(count < 1 for count in counts):
        raise ValueError(f"segment sizes {list(counts)} do not cover {len(recipients)} recipients")
    parts: list[tuple[Recipient, ...]] = []
    start = 0
    for count in counts:
        parts.append(tuple(recipients[start : start + count]))
        start += count
    return tuple(parts)


def _dump(recipient: Recipient) -> dict[str, Any]:
    return recipient.model_dump(by_alias=True, exclude_none=True)
