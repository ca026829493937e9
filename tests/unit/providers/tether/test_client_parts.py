"""The pure parts of the Tether client: answers, tokens, mapping, quota and reconciliation."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, date, datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

import pytest

from service.contract.errors import FieldProblem, RetryClass, TetherError, error_info
from service.contract.tether import TetherCampaignData
from service.contract.wire import utc_millis
from service.providers.tether.account import TetherCredentials
from service.providers.tether.api import read_answer
from service.providers.tether.auth import TokenKeeper, jwt_expiry, renew_time
from service.providers.tether.mapping import split, to_campaign_body
from service.providers.tether.quota import (
    LOOKAHEAD_DAYS,
    auto_segment_body,
    days_after,
    fits,
    quota_exceeded,
    segment_plan,
    slot_date,
)
from service.providers.tether.reconcile import campaigns_in, find_created_campaign, find_segments
from service.providers.tether.sandbox.campaigns import campaign_list
from service.providers.tether.sandbox.config import ListShape

DATA = TetherCampaignData.model_validate(
    {
        "name": "Launch",
        "message": "Hi {{firstName}}",
        "newContacts": [{"firstName": "A", "phoneNumber": "+14155550133"}],
        "selectedExistingContacts": [{"_id": "665f1a0c0e0a4b001a2c9f01"}],
        "scheduleDate": "2030-05-20T11:00:00-04:00",
        "quota": "segment",
    }
)
SINCE = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b'{"error": "Invalid or expired token"}', "HTTP_401", "Invalid or expired token"),
        (
            b'{"error": {"code": "invalid_request", "message": "Missing"}}',
            "invalid_request",
            "Missing",
        ),
        (b'{"message": "Missing", "code": "invalid_request"}', "invalid_request", "Missing"),
    ],
)
def test_each_error_shape_reads_into_one_error(body: bytes, code: str, message: str) -> None:
    status = 401 if b"token" in body else 400
    with pytest.raises(TetherError) as caught:
        read_answer(status, body, retry_after=None)
    assert (caught.value.code, caught.value.message, caught.value.http_status) == (
        code,
        message,
        status,
    )


def test_a_503_is_transient_and_secrets_in_bodies_are_redacted() -> None:
    with pytest.raises(TetherError) as caught:
        read_answer(503, b"oops tk_secret", retry_after=2.0, secrets=["tk_secret"])
    assert caught.value.retry_class is RetryClass.TRANSIENT and caught.value.retry_after == 2.0
    assert "tk_secret" not in caught.value.message


def _jwt(exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
    return f"h.{claims}.s"


def test_a_jwt_is_renewed_when_most_of_its_lifetime_has_passed() -> None:
    assert jwt_expiry(_jwt(1000)) == 1000 and jwt_expiry("opaque") is None
    assert renew_time(_jwt(1000), issued_at=0) == 800


async def test_concurrent_callers_share_one_login_and_a_refusal_renews_once() -> None:
    logins: list[str] = []
    now = [0.0]

    async def login() -> str:
        await asyncio.sleep(0)
        logins.append(f"t{len(logins)}")
        return _jwt(100)[:-1] + str(len(logins))

    keeper = TokenKeeper(TetherCredentials(email="e", password="p"), login, clock=lambda: now[0])
    tokens = await asyncio.gather(*(keeper.token() for _ in range(5)))
    assert len(set(tokens)) == 1 and len(logins) == 1
    fresh = await asyncio.gather(*(keeper.refused(tokens[0]) for _ in range(3)))
    assert len(set(fresh)) == 1 and len(logins) == 2
    now[0] = 90.0  # past 80% of its lifetime
    await keeper.token()
    assert len(logins) == 3


async def test_a_static_token_is_never_renewed() -> None:
    async def login() -> str:
        raise AssertionError("a static token must not log in")

    keeper = TokenKeeper(TetherCredentials(api_token="tk"), login)
    assert await keeper.token() == "tk" and not keeper.renews


def test_a_segment_body_has_its_recipients_date_and_part_name() -> None:
    new, existing = DATA.new_contacts[0], DATA.selected_existing_contacts[0]
    when = datetime(2030, 5, 21, 15, tzinfo=UTC)
    body = to_campaign_body(DATA, recipients=[existing], schedule=when, name="Launch (2/2)")
    assert body["newContacts"] == [] and body["selectedExistingContacts"] == [{"_id": existing.id}]
    assert (body["scheduleDate"], body["name"]) == ("2030-05-21T15:00:00.000Z", "Launch (2/2)")
    assert "quota" not in body
    assert split([new, existing], [1, 1]) == ((new,), (existing,))
    with pytest.raises(ValueError):
        split([new, existing], [3])


def test_quota_answers_are_checked_not_trusted() -> None:
    assert fits({"available": True}) and not fits({"available": False})
    with pytest.raises(TetherError):
        fits({})
    when = datetime(2030, 5, 20, 11, tzinfo=UTC) + timedelta(minutes=5)
    with pytest.raises(TetherError, match="does not split 3"):
        segment_plan(
            {"segments": [{"scheduledDate": "2030-05-20T15:00:00Z", "contactCount": 2}]},
            3,
            asked=when,
        )
    assert auto_segment_body(when, 3) == {
        "totalContacts": 3,
        "firstSegmentDate": "2030-05-20",
        "firstSegmentTime": "11:05",
    }


@pytest.mark.parametrize(
    "read_at",
    ["2030-05-20T15:00:00.000Z", "2030-05-20T19:00:00.000Z", "2030-05-20T13:00:00.000Z"],
    ids=["utc", "toronto", "paris"],
)
def test_segments_keep_the_asked_time_whatever_zone_tether_read_it_in(read_at: str) -> None:
    asked = datetime(2030, 5, 20, 15, tzinfo=UTC)
    first = datetime.fromisoformat(read_at)
    answer = {
        "segments": [
            {"scheduledDate": read_at, "contactCount": 2},
            {"scheduledDate": (first + timedelta(days=2)).isoformat(), "contactCount": 1},
        ]
    }
    plan = segment_plan(answer, 3, asked=asked)
    assert [(s.schedule, s.count) for s in plan] == [(asked, 2), (asked + timedelta(days=2), 1)]


def test_a_quota_refusal_names_the_next_date_in_its_message_and_its_details() -> None:
    when = datetime(2030, 5, 20, 15, tzinfo=UTC)
    verdict = {"available": False, "remaining": 1, "limit": 3, "message": "Only 1 SMS left"}
    refused = error_info(quota_exceeded(when, 2, verdict, "2030-05-21"))
    assert (refused.code, refused.retryable) == ("TETHER_DAILY_QUOTA_EXCEEDED", False)
    assert "the next date with room for 2 is 2030-05-21" in refused.message
    assert "1 of the day's 3 SMS left" in refused.message
    assert refused.details == (
        FieldProblem(
            "data.scheduleDate", "Only 1 SMS left", (("nextAvailableDate", "2030-05-21"),)
        ),
    )


def test_a_quota_refusal_without_a_next_date_says_so_and_adds_no_date() -> None:
    when = datetime(2030, 5, 20, 15, tzinfo=UTC)
    refused = quota_exceeded(when, 2, {"available": False}, None)
    assert "no date with room for them was found on or after it" in refused.message
    assert "counts from today" in refused.message
    assert [problem.extra for problem in refused.details] == [()]


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ("2030-05-21", "2030-05-21"),
        ("2030-05-19", "2030-05-19"),  # the asked day in Toronto, behind UTC
        ("2030-05-20T02:00:00.000Z", "2030-05-20T02:00:00.000Z"),  # a date-time: its day
        ("2026-12-03", None),  # counted from today: before the asked day, no answer
        ("2030-05-19T03:00:00.000Z", None),  # the day before, in Toronto
        (None, None),
        ("soon", None),
    ],
)
def test_next_available_slot_stands_only_for_a_date_on_or_after_the_asked_one(
    named: str | None, expected: str | None
) -> None:
    when = datetime(2030, 5, 20, 2, tzinfo=UTC)
    slot = {"nextAvailableDate": named, "timezone": "America/Toronto"}
    assert slot_date(slot, when) == expected


def test_the_days_after_a_full_one_keep_its_local_time_across_a_clock_change() -> None:
    toronto = ZoneInfo("America/Toronto")
    when = datetime(2030, 3, 9, 11, tzinfo=toronto)  # the day before summer time starts
    days = days_after(when, toronto)
    assert len(days) == LOOKAHEAD_DAYS
    assert [d.date() for d in days[:2]] == [date(2030, 3, 10), date(2030, 3, 11)]
    assert {(d.hour, d.minute) for d in days} == {(11, 0)}
    assert [utc_millis(d) for d in days[:2]] == [
        "2030-03-10T15:00:00.000Z",
        "2030-03-11T15:00:00.000Z",
    ]


def test_the_campaign_a_lost_create_made_is_found_and_no_other() -> None:
    body = to_campaign_body(DATA)
    made = {**body, "_id": "a" * 24, "createdAt": "2030-01-01T00:00:10.000Z"}
    older = {**made, "_id": "b" * 24, "createdAt": "2029-12-01T00:00:00.000Z"}
    other = {**made, "_id": "c" * 24, "message": "another"}
    listed = campaigns_in({"success": True, "data": [older, other, made]})
    assert find_created_campaign(listed, body, SINCE)["_id"] == "a" * 24  # type: ignore[index]
    assert find_created_campaign([older, other], body, SINCE) is None


@pytest.mark.parametrize("shape", get_args(ListShape))
def test_a_lost_create_is_found_in_every_list_shape_the_sandbox_answers(shape: ListShape) -> None:
    body = to_campaign_body(DATA)
    made = {**body, "_id": "a" * 24, "createdAt": "2030-01-01T00:00:10.000Z"}
    listed = campaigns_in(campaign_list([made], shape))
    assert find_created_campaign(listed, body, SINCE) == made


def test_the_parts_of_a_split_campaign_are_found_in_order() -> None:
    parts = [
        {"name": "Launch (2/2)", "message": DATA.message, "_id": "2"},
        {"name": "Launch (1/2)", "message": DATA.message, "_id": "1"},
        {"name": "Launch (x)", "message": DATA.message, "_id": "x"},
    ]
    found = find_segments(parts, "Launch", DATA.message, SINCE)
    assert [p["_id"] for p in found] == ["1", "2"]
