"""The event of a created Tether campaign (contract §8); failures are built by ``events``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.contract.commands import Command
from service.contract.event_data import TetherCampaignCreatedData, TetherSegmentData
from service.contract.events import EventType, OutgoingEvent, build_event
from service.contract.tether import TetherCampaignData


@dataclass(frozen=True, slots=True)
class CreatedCampaign:
    """One campaign Tether created for a command, as the event reports it."""

    campaign_id: str | None
    status: str | None
    schedule_date: str | None
    recipients: int


def tether_campaign_created_event(
    command: Command,
    created: tuple[CreatedCampaign, ...],
    *,
    attempts: int,
    event_id: str | None = None,
    now: datetime | None = None,
) -> OutgoingEvent:
    """``tether.campaign.created``: the one campaign, or the first with every segment listed."""
    if not isinstance(command.data, TetherCampaignData) or not created:
        raise ValueError(f"{command.type} is not a Tether campaign command with a result")
    first = created[0]
    segments = (
        tuple(
            TetherSegmentData(
                campaign_id=c.campaign_id, schedule_date=c.schedule_date, recipients=c.recipients
            )
            for c in created
        )
        if len(created) > 1
        else None
    )
    data = TetherCampaignCreatedData(
        request_id=command.id,
        request_source=command.source,
        campaign_id=first.campaign_id,
        status=first.status,
        schedule_date=first.schedule_date,
        recipients=sum(c.recipients for c in created),
        attempts=attempts,
        segments=segments,
    )
    return build_event(
        EventType.TETHER_CAMPAIGN_CREATED,
        data,
        first.campaign_id,
        command.traceparent,
        event_id,
        now,
        account=command.account,
    )
