"""Reconciliation: recognising the message or campaign an unanswered create made, and finding it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest

from service.providers.msgflash.reconcile import (
    ReconcileUndecided,
    created_since,
    find_created_message,
    matches_campaign,
    matches_payload,
)

if TYPE_CHECKING:
    from service.providers.msgflash.client import MsgFlashClient

INSTANCE = "00000000-0000-4000-8000-0000000000a1"
TEMPLATE = "00000000-0000-4000-8000-0000000000c1"
SINCE = datetime(2026, 4, 1, 10, 0, 0, tzinfo=UTC)


def stamp(offset_seconds: float) -> str:
    moment = SINCE + timedelta(seconds=offset_seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def listed(**fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": "m1",
        "instanceId": INSTANCE,
        "direction": "outbound",
        "type": "text",
        "to": "+33612345678",
        "body": "Hello",
        "mediaUrl": None,
        "meta": {},
        "createdAt": stamp(1),
    }
    message.update(fields)
    return message


TEXT = {"instanceId": INSTANCE, "to": "+33612345678", "type": "text", "text": "Hello"}
IMAGE = {
    "instanceId": INSTANCE,
    "to": "+33612345678",
    "type": "image",
    "mediaUrl": "https://cdn.example.com/a.png",
    "text": "Look",
}
BY_TEMPLATE = {"instanceId": INSTANCE, "to": "+33612345678", "templateId": TEMPLATE}


def test_a_text_message_matches_its_payload() -> None:
    assert matches_payload(listed(), TEXT)


def test_recipient_is_compared_on_digits() -> None:
    assert matches_payload(listed(to="33612345678"), TEXT)


@pytest.mark.parametrize(
    "difference",
    [
        {"to": "+33600000000"},
        {"body": "Hello!"},
        {"type": "image"},
        {"instanceId": "00000000-0000-4000-8000-0000000000a2"},
        {"direction": "inbound"},
    ],
)
def test_any_difference_in_what_the_request_fixed_is_no_match(difference: dict[str, Any]) -> None:
    assert not matches_payload(listed(**difference), TEXT)


def test_a_media_message_matches_on_its_url_and_caption() -> None:
    message = listed(type="image", mediaUrl=IMAGE["mediaUrl"], body="Look")
    assert matches_payload(message, IMAGE)
    assert not matches_payload({**message, "mediaUrl": "https://cdn.example.com/b.png"}, IMAGE)


def test_a_template_send_matches_on_the_template_id_in_meta_whatever_the_rendered_body() -> None:
    message = listed(body="Hi Ana", type="image", meta={"templateId": TEMPLATE})
    assert matches_payload(message, BY_TEMPLATE)


def test_a_template_send_does_not_match_another_template_or_a_direct_message() -> None:
    assert not matches_payload(listed(meta={"templateId": "other"}), BY_TEMPLATE)
    assert not matches_payload(listed(meta=None), BY_TEMPLATE)


def test_a_location_send_without_text_matches_whatever_body_msgflash_stored() -> None:
    payload = {"instanceId": INSTANCE, "to": "+33612345678", "type": "location", "latitude": 5.3}
    assert matches_payload(listed(type="location", body="Abidjan"), payload)


CAMPAIGN = {
    "instanceId": INSTANCE,
    "name": "Launch",
    "schedule": "2030-12-01T08:00:00Z",
    "repeat": "none",
    "recipients": {"type": "all"},
    "type": "text",
    "body": "Hello all",
}


@pytest.mark.parametrize(
    ("listed_repeat", "sent_repeat", "matches"),
    [
        ("none", "none", True),
        ("weekly", "weekly", True),
        ("noe", "none", True),  # the spelling in MsgFlash's docs, should a listing use it
        ("noe", "weekly", False),
        ("noe", "daily", False),
        ("none", "weekly", False),
    ],
)
def test_a_campaign_matches_only_the_repeat_it_was_created_with(
    listed_repeat: str, sent_repeat: str, matches: bool
) -> None:
    campaign = {**CAMPAIGN, "id": "c1", "schedule": "2030-12-01T08:00:00.000Z"}

    assert (
        matches_campaign({**campaign, "repeat": listed_repeat}, {**CAMPAIGN, "repeat": sent_repeat})
        is matches
    )


def test_creation_time_is_compared_with_timezones() -> None:
    assert created_since(listed(createdAt=stamp(0)), SINCE)
    assert not created_since(listed(createdAt=stamp(-0.001)), SINCE)
    assert created_since(listed(createdAt="2026-04-01T12:00:00+02:00"), SINCE)


def test_a_message_without_a_readable_timestamp_is_considered_recent() -> None:
    assert created_since(listed(createdAt=None), SINCE)
    assert created_since(listed(createdAt="yesterday"), SINCE)


class FakeMessages:
    """Serves pages newest first, the way GET /api/v1/messages does."""

    def __init__(self, messages: list[dict[str, Any]], page_size: int = 2) -> None:
        self.messages = messages
        self.page_size = page_size
        self.calls: list[dict[str, Any]] = []

    async def list_messages(
        self,
        *,
        instance_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        self.calls.append({"instance_id": instance_id, "cursor": cursor})
        start = int(cursor or 0)
        end = start + self.page_size
        more = end < len(self.messages)
        return {
            "messages": self.messages[start:end],
            "nextCursor": str(end) if more else None,
            "hasMore": more,
        }


async def find(fake: FakeMessages, payload: dict[str, Any]) -> dict[str, Any] | None:
    return await find_created_message(cast("MsgFlashClient", fake), payload, since=SINCE)


async def test_the_one_matching_recent_message_is_found_across_pages() -> None:
    fake = FakeMessages(
        [
            listed(id="a", body="x"),
            listed(id="b", to="+1"),
            listed(id="c"),
            listed(id="d", body="y"),
        ]
    )
    found = await find(fake, TEXT)
    assert found is not None and found["id"] == "c"
    assert fake.calls[0] == {"instance_id": INSTANCE, "cursor": None}


async def test_paging_stops_at_the_first_page_reaching_past_since_minus_skew() -> None:
    fake = FakeMessages(
        [
            listed(id="a", body="x"),
            listed(id="b", createdAt=stamp(-9)),
            listed(id="old", body="z", createdAt=stamp(-11)),
            listed(id="older", createdAt=stamp(-60)),
        ]
    )
    found = await find(fake, TEXT)
    assert found is not None and found["id"] == "b"
    assert len(fake.calls) == 2


async def test_a_match_older_than_the_skew_is_ignored() -> None:
    assert await find(FakeMessages([listed(createdAt=stamp(-11))]), TEXT) is None


async def test_two_matches_cannot_be_told_apart_so_none_is_reported() -> None:
    assert await find(FakeMessages([listed(id="a"), listed(id="b")]), TEXT) is None


async def test_nothing_matching_is_none() -> None:
    assert await find(FakeMessages([]), TEXT) is None


async def test_a_naive_since_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await find_created_message(
            cast("MsgFlashClient", FakeMessages([])), TEXT, since=datetime(2026, 4, 1)
        )


# --- several identical matches: attribution -------------------------------------------------
SETTLED = SINCE + timedelta(seconds=30)


class FakeAttribution:
    """Messages held by finished commands, and those taken by earlier lookups."""

    def __init__(self, held: set[str] | None = None) -> None:
        self.finished = held or set()
        self.taken: dict[str, str] = {}

    async def take(self, message_id: str, taker: str) -> bool:
        if message_id in self.finished:
            return False
        return self.taken.setdefault(message_id, taker) == taker

    async def held(self, message_id: str) -> bool:
        return message_id in self.finished


async def attribute(
    fake: FakeMessages, attribution: FakeAttribution, taker: str = "cmd"
) -> dict[str, Any] | None:
    return await find_created_message(
        cast("MsgFlashClient", fake),
        TEXT,
        since=SINCE,
        attribution=attribution,
        settled_before=SETTLED,
        taker=taker,
    )


async def test_identical_matches_go_one_to_each_lookup_oldest_first_then_none() -> None:
    fake = FakeMessages([listed(id="b", createdAt=stamp(2)), listed(id="a", createdAt=stamp(1))])
    attribution = FakeAttribution()
    first = await attribute(fake, attribution, "one")
    second = await attribute(fake, attribution, "two")
    assert first is not None and first["id"] == "a"
    assert second is not None and second["id"] == "b"
    assert await attribute(fake, attribution, "three") is None


async def test_looking_again_for_the_same_command_finds_the_message_it_took() -> None:
    """Its first take went through but the answer was lost: it must still be its own."""
    fake = FakeMessages([listed(id="b", createdAt=stamp(2)), listed(id="a", createdAt=stamp(1))])
    attribution = FakeAttribution()
    await attribute(fake, attribution, "one")
    again = await attribute(fake, attribution, "one")
    assert again is not None and again["id"] == "a"


async def test_a_match_held_by_a_finished_command_is_never_taken() -> None:
    fake = FakeMessages([listed(id="answered")])
    assert await attribute(fake, FakeAttribution(held={"answered"})) is None


async def test_a_recent_match_nobody_holds_leaves_the_lookup_undecided() -> None:
    fake = FakeMessages([listed(id="young", createdAt=stamp(40))])
    with pytest.raises(ReconcileUndecided, match="young"):
        await attribute(fake, FakeAttribution())


async def test_a_recent_match_held_by_its_answered_command_decides_none() -> None:
    fake = FakeMessages([listed(id="young", createdAt=stamp(40))])
    assert await attribute(fake, FakeAttribution(held={"young"})) is None
