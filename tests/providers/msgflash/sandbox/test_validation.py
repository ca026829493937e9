"""The pure validators other suites use to check the relay's mapping (no I/O, no loop)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.providers.msgflash.sandbox.seed import (
    CONTACT_ANA,
    GROUP_CUSTOMERS,
    INSTANCE_MAIN,
    TEMPLATE_WELCOME,
)
from service.providers.msgflash.sandbox.validation import (
    destination_problem,
    validate_campaign_request,
    validate_message_request,
)

e164 = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
texts = st.text(min_size=1, max_size=4096).filter(str.strip)


@given(to=e164, text=texts)
def test_any_text_message_to_an_e164_number_is_valid(to: str, text: str) -> None:
    body = {"instanceId": INSTANCE_MAIN, "to": to, "type": "text", "text": text}
    assert validate_message_request(body, schedule=False) == []
    assert destination_problem(to) is None


@given(latitude=st.floats(-90, 90), longitude=st.floats(-180, 180))
def test_any_in_range_location_is_valid(latitude: float, longitude: float) -> None:
    body = {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "type": "location",
            "latitude": latitude, "longitude": longitude}  # fmt: skip
    assert validate_message_request(body, schedule=False) == []


@given(variables=st.dictionaries(st.text(min_size=1), st.one_of(st.text(), st.integers())))
def test_a_template_send_with_flat_variables_is_valid(variables: dict[str, Any]) -> None:
    body = {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "templateId": TEMPLATE_WELCOME,
            "variables": variables}  # fmt: skip
    assert validate_message_request(body, schedule=False) == []


def test_schedule_adds_the_scheduled_at_rule() -> None:
    body = {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "type": "contact",
            "contactId": CONTACT_ANA}  # fmt: skip
    assert validate_message_request(body, schedule=False) == []
    assert [p["field"] for p in validate_message_request(body, schedule=True)] == ["scheduledAt"]
    with_time = {**body, "scheduledAt": "2026-12-01T08:00:00+02:00"}
    assert validate_message_request(with_time, schedule=True) == []


def test_every_problem_is_reported_at_once() -> None:
    problems = validate_message_request({"type": "image"}, schedule=True)
    assert [p["field"] for p in problems] == ["instanceId", "to", "mediaUrl", "scheduledAt"]
    assert all(set(problem) == {"field", "message"} for problem in problems)


def test_a_phone_like_number_is_a_destination_problem_not_a_schema_one() -> None:
    body = {"instanceId": INSTANCE_MAIN, "to": "0612345678", "type": "text", "text": "Hi"}
    assert validate_message_request(body, schedule=False) == []
    problem = destination_problem("0612345678")
    assert problem is not None and "E.164" in problem


@given(
    recipients=st.sampled_from(
        [
            {"type": "all"},
            {"type": "tags", "value": ["vip"]},
            {"type": "explicit", "value": [CONTACT_ANA]},
            {"type": "group", "groupId": GROUP_CUSTOMERS},
        ]
    ),
    repeat=st.sampled_from([None, "none", "noe", "daily", "weekly"]),
)
def test_campaigns_with_any_selector_and_repeat_are_valid(
    recipients: dict[str, Any], repeat: str | None
) -> None:
    body = {"instanceId": INSTANCE_MAIN, "name": "n", "schedule": "2026-12-01T08:00:00Z",
            "recipients": recipients, "type": "text", "body": "Hi", "repeat": repeat}  # fmt: skip
    assert validate_campaign_request(body) == []


def test_a_campaign_text_in_text_instead_of_body_names_body() -> None:
    body = {"instanceId": INSTANCE_MAIN, "name": "n", "schedule": "2026-12-01T08:00:00Z",
            "recipients": {"type": "all"}, "type": "text", "text": "Hi"}  # fmt: skip
    [problem] = validate_campaign_request(body)
    assert problem["field"] == "body" and "'body', not 'text'" in problem["message"]
