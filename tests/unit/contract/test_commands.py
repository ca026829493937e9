"""Parsing commands: structured and binary CloudEvents, and every way a command can be wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from service.contract.campaigns import AllRecipients, TagRecipients
from service.contract.commands import (
    ROUTING_KEYS,
    Command,
    CommandIdentity,
    CommandType,
    CreateCampaignData,
    RawCommand,
    ScheduleMessageData,
    SendMessageData,
    idempotency_key,
    parse_command,
    peek_identity,
)
from service.contract.errors import INVALID_EVENT, InvalidCommand
from service.contract.messages import ButtonsMessage, TextMessage
from service.contract.schemas import command_schemas
from tests.unit import strategies as s

MAX = 64 * 1024
INSTANCE = "3f2b1c9e-8d4a-4e6b-9c1d-2a3b4c5d6e7f"
TEXT = {"type": "text", "text": "Hello"}
SEND_DATA = {"to": "+33612345678", "message": TEXT}
SCHEDULE_DATA = {**SEND_DATA, "scheduledAt": "2026-12-01T08:00:00Z"}
CAMPAIGN_DATA = {
    "name": "December promo",
    "schedule": "2026-12-01T09:00:00+01:00",
    "recipients": {"type": "all"},
    "message": TEXT,
}


def structured(
    envelope: Any, content_type: str | None = "application/cloudevents+json"
) -> RawCommand:
    return RawCommand(body=json.dumps(envelope).encode(), content_type=content_type)


def parse(envelope: Any, **raw: Any) -> Command:
    return parse_command(RawCommand(body=json.dumps(envelope).encode(), **raw), max_bytes=MAX)


def problems(envelope: Any, **raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidCommand) as caught:
        parse(envelope, **raw)
    assert caught.value.code == INVALID_EVENT
    return [(p.field, p.message) for p in caught.value.details]


def fields(envelope: Any, **raw: Any) -> list[str]:
    return [field for field, _ in problems(envelope, **raw)]


def raw_problems(raw: RawCommand, max_bytes: int = MAX) -> list[str]:
    with pytest.raises(InvalidCommand) as caught:
        parse_command(raw, max_bytes=max_bytes)
    return [p.field for p in caught.value.details]


# --- structured mode ----------------------------------------------------------------------
def test_a_structured_schedule_command_parses_into_typed_data() -> None:
    command = parse(s.envelope(s.SCHEDULE, SCHEDULE_DATA, time="2026-11-30T10:00:00+02:00"))

    assert command.type is CommandType.SCHEDULE_MESSAGE
    assert isinstance(command.data, ScheduleMessageData)
    assert command.data.message == TextMessage(type="text", text="Hello")
    assert command.data.scheduled_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert command.time == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert command.is_campaign is False


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
        "application/json",
        "Application/JSON; charset=UTF-8",
        None,  # many AMQP producers leave it unset: read as JSON
        "",
    ],
)
def test_json_content_types_and_a_missing_one_are_accepted(content_type: str | None) -> None:
    raw = structured(s.envelope(s.SEND, SEND_DATA), content_type)
    assert parse_command(raw, max_bytes=MAX).type is CommandType.SEND_MESSAGE


def test_cloudevents_extension_attributes_are_accepted_and_ignored() -> None:
    command = parse(s.envelope(s.SEND, SEND_DATA, partitionkey="p1", dataschema="urn:x"))
    assert isinstance(command.data, SendMessageData)


def test_a_campaign_without_repeat_repeats_none() -> None:
    command = parse(s.envelope(s.CAMPAIGN, CAMPAIGN_DATA))

    assert isinstance(command.data, CreateCampaignData)
    assert command.data.repeat == "none"
    assert command.data.recipients == AllRecipients(type="all")
    assert command.data.schedule == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert command.is_campaign


def test_repeat_noe_from_the_msgflash_docs_is_read_as_none() -> None:
    command = parse(s.envelope(s.CAMPAIGN, {**CAMPAIGN_DATA, "repeat": "noe"}))
    assert isinstance(command.data, CreateCampaignData)
    assert command.data.repeat == "none"


def test_campaign_recipient_selectors_parse_by_type() -> None:
    data = {**CAMPAIGN_DATA, "recipients": {"type": "tags", "value": ["vip", "fr"]}}
    command = parse(s.envelope(s.CAMPAIGN, data))
    assert isinstance(command.data, CreateCampaignData)
    assert command.data.recipients == TagRecipients(type="tags", value=("vip", "fr"))


def test_wire_names_are_camel_case_and_python_names_snake_case() -> None:
    data = {
        **SEND_DATA,
        "instanceId": INSTANCE,
        "message": {
            "type": "buttons",
            "title": "Order",
            "description": "Confirm?",
            "buttons": [{"kind": "reply", "displayText": "Yes", "id": "yes"}],
        },
    }
    command = parse(s.envelope(s.SEND, data))
    assert isinstance(command.data, SendMessageData)
    assert command.data.instance_id == INSTANCE
    assert isinstance(command.data.message, ButtonsMessage)
    assert command.data.message.buttons[0].display_text == "Yes"


# --- binary mode --------------------------------------------------------------------------
def test_binary_mode_takes_id_type_and_source_from_amqp_properties() -> None:
    command = parse(
        SEND_DATA, content_type="application/json", message_id="m-7", type=s.SEND, app_id="/crm"
    )

    assert (command.id, command.source, command.type) == ("m-7", "/crm", CommandType.SEND_MESSAGE)
    assert isinstance(command.data, SendMessageData)
    assert command.data.to == "+33612345678"


def test_binary_mode_reads_cloudevents_headers_whatever_their_prefix_and_encoding() -> None:
    headers = {
        "cloudEvents_time": b"2026-11-30T10:00:00Z",
        "ce_subject": "order-42",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "x-unrelated": "ignored",
    }
    command = parse(SEND_DATA, message_id="m-7", type=s.SEND, app_id="/crm", headers=headers)

    assert command.time == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert command.subject == "order-42"
    assert command.traceparent == headers["traceparent"]


def test_binary_mode_without_app_id_names_source_and_the_app_id_property() -> None:
    [(field, message)] = problems(SEND_DATA, message_id="m-7", type=s.SEND)
    assert field == "source"
    assert "app_id" in message and "cloudEvents_source" in message


@pytest.mark.parametrize("prefix", ["cloudEvents_", "cloudEvents:", "ce-", "ce_", "CE-"])
def test_binary_mode_takes_every_attribute_from_headers_alone(prefix: str) -> None:
    headers = {
        f"{prefix}specversion": "1.0",
        f"{prefix}id": b"order-7",
        f"{prefix}source": "urn:orders",
        f"{prefix}type": s.SEND,
        f"{prefix}time": 1764496800000,  # the AMQP binding: milliseconds since the epoch
    }
    command = parse(SEND_DATA, headers=headers)

    assert (command.id, command.source, command.type) == ("order-7", "urn:orders", s.SEND)
    assert command.time == datetime(2025, 11, 30, 10, 0, tzinfo=UTC)


def test_headers_win_over_the_v1_properties_and_cannot_replace_data() -> None:
    headers = {"cloudEvents_id": "from-header", "ce-data": '{"to": "+1"}', "ce-bad name": "x"}
    command = parse(
        SEND_DATA, message_id="from-property", type=s.SEND, app_id="/a", headers=headers
    )
    assert command.id == "from-header"
    assert command.data.to == "+33612345678"  # type: ignore[union-attr]


def test_an_unparseable_binary_command_is_identified_by_its_headers() -> None:
    headers = {"cloudEvents_id": "order-7", "cloudEvents_source": "urn:o", "ce-type": s.CAMPAIGN}
    identity = peek_identity(RawCommand(body=b"garbage", headers=headers))
    assert identity == CommandIdentity("order-7", "urn:o", s.CAMPAIGN)


def test_a_command_names_its_account_at_the_top_level_or_is_default() -> None:
    assert parse(s.envelope(s.SEND, SEND_DATA, account="acme")).account == "acme"
    assert parse(s.envelope(s.SEND, SEND_DATA)).account == "default"


@pytest.mark.parametrize("header", ["cloudEvents_account", "cloudEvents:account", "ce-account"])
def test_a_binary_command_names_its_account_in_a_header(header: str) -> None:
    command = parse(
        SEND_DATA, message_id="m-7", type=s.SEND, app_id="/a", headers={header: b"acme"}
    )
    assert command.account == "acme"


def test_an_unparseable_command_is_still_answered_for_the_account_it_named() -> None:
    headers = {"cloudEvents_id": "order-7", "cloudEvents_source": "urn:o", "ce-type": s.SEND}
    binary = peek_identity(RawCommand(body=b"garbage", headers={**headers, "ce-account": "acme"}))
    structured_one = peek_identity(structured({"id": "x", "account": "acme", "data": 1}))
    assert (binary.account, structured_one.account) == ("acme", "acme")
    assert peek_identity(RawCommand(body=b"garbage", headers=headers)).account == "default"


def test_a_body_with_specversion_stays_structured_despite_amqp_type_and_message_id() -> None:
    body = s.envelope(s.SEND, SEND_DATA, id="from-body")
    command = parse(body, message_id="from-property", type=s.SCHEDULE, app_id="/other")
    assert (command.id, command.type) == ("from-body", CommandType.SEND_MESSAGE)


def test_binary_mode_rejects_a_body_that_is_not_a_data_object() -> None:
    assert fields([1, 2], message_id="m", type=s.SEND, app_id="/a") == ["data"]


# --- unreadable bodies --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (RawCommand(body=b"{not json"), "body"),
        (RawCommand(body=b'{"id": NaN}'), "body"),
        (RawCommand(body=b"\xff\xfe{}"), "body"),
        (RawCommand(body=b"[1, 2]"), "body"),
        (RawCommand(body=b'"a string"'), "body"),
        (RawCommand(body=b"null"), "body"),
        (RawCommand(body=b"{}", content_type="text/plain"), "content_type"),
        (RawCommand(body=b"{}", content_type="application/xml"), "content_type"),
        (RawCommand(body=b"{}", content_type="application/json; charset=latin-1"), "content_type"),
    ],
    ids=[
        "not-json",
        "nan",
        "not-utf8",
        "array",
        "string",
        "null",
        "text-plain",
        "xml",
        "latin-1",
    ],
)
def test_unreadable_bodies_are_invalid_and_name_the_culprit(raw: RawCommand, field: str) -> None:
    assert raw_problems(raw) == [field]


def test_a_body_over_the_limit_is_refused_naming_the_setting() -> None:
    raw = structured(s.envelope(s.SEND, SEND_DATA))
    with pytest.raises(InvalidCommand) as caught:
        parse_command(raw, max_bytes=len(raw.body) - 1)
    [problem] = caught.value.details
    assert problem.field == "body"
    assert "RELAY_MAX_BODY_BYTES" in problem.message


def test_a_body_exactly_at_the_limit_is_accepted() -> None:
    raw = structured(s.envelope(s.SEND, SEND_DATA))
    assert parse_command(raw, max_bytes=len(raw.body)).id == "cmd-1"


# --- envelope problems --------------------------------------------------------------------
@pytest.mark.parametrize("attribute", ["specversion", "id", "source", "type"])
def test_a_missing_required_attribute_is_reported_by_name(attribute: str) -> None:
    envelope = s.envelope(s.SEND, SEND_DATA)
    del envelope[attribute]
    assert fields(envelope) == [attribute]


def test_an_unknown_type_is_reported_once_with_the_known_types() -> None:
    [(field, message)] = problems(s.envelope("msgflash.message.delete", SEND_DATA))
    assert field == "type"
    assert "msgflash.message.delete" in message
    assert all(kind.value in message for kind in CommandType)


def test_every_envelope_problem_is_reported_at_once() -> None:
    envelope = {"specversion": "0.3", "id": "", "type": s.SEND, "data": SEND_DATA}
    assert fields(envelope) == ["specversion", "id", "source"]


def test_the_exception_message_summarises_the_problems() -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse(s.envelope(s.SEND, {**SEND_DATA, "to": "0612"}))
    assert caught.value.message.startswith("invalid command: data.to: must be an E.164 number")


# --- data problems: exact field paths -----------------------------------------------------
def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


BUTTON = {"kind": "reply", "displayText": "Yes", "id": "yes"}


def _buttons(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": "buttons", "title": "T", "description": "D", "buttons": list(buttons)}


@pytest.mark.parametrize(
    ("command_type", "data", "expected"),
    [
        (s.SCHEDULE, _with(SCHEDULE_DATA, scheduledAt="2026-12-01T08:00:00"), ["data.scheduledAt"]),
        (s.SCHEDULE, _with(SCHEDULE_DATA, scheduledAt=1764576000), ["data.scheduledAt"]),
        (s.SCHEDULE, SEND_DATA, ["data.scheduledAt"]),
        (s.SEND, _with(SEND_DATA, to="0612345678"), ["data.to"]),
        (s.SEND, _with(SEND_DATA, to="+0612345678"), ["data.to"]),
        (s.SEND, _with(SEND_DATA, to="+1234567"), ["data.to"]),
        (s.SEND, _with(SEND_DATA, to="+1234567890123456"), ["data.to"]),
        (s.SEND, _with(SEND_DATA, to=33612345678), ["data.to"]),
        (
            s.SEND,
            _with(SEND_DATA, message=_buttons(BUTTON, BUTTON, BUTTON)),
            ["data.message.buttons"],
        ),
        (s.SEND, _with(SEND_DATA, message=_buttons()), ["data.message.buttons"]),
        (
            s.SEND,
            _with(SEND_DATA, message=_buttons(BUTTON, {"kind": "share", "displayText": "x"})),
            ["data.message.buttons[1].kind"],
        ),
        (
            s.SEND,
            _with(SEND_DATA, message=_buttons({**BUTTON, "displayText": "x" * 51})),
            ["data.message.buttons[0].displayText"],
        ),
        (
            s.SEND,
            _with(SEND_DATA, message=_buttons({"kind": "url", "displayText": "Go", "url": "/a"})),
            ["data.message.buttons[0].url"],
        ),
        (
            s.SEND,
            _with(SEND_DATA, template={"id": INSTANCE}),
            ["data"],
        ),
        (s.SEND, {"to": "+33612345678"}, ["data"]),
        (s.SEND, _with(SEND_DATA, instance="main", instanceId=INSTANCE), ["data"]),
        (s.SEND, {"to": "+33612345678", "mesage": TEXT}, ["data.mesage"]),
        (
            s.SEND,
            _with(SEND_DATA, message={"type": "text", "body": "Hi"}),
            ["data.message.text", "data.message.body"],
        ),
        (s.SEND, _with(SEND_DATA, message={"type": "text", "text": "   "}), ["data.message.text"]),
        (
            s.SEND,
            _with(SEND_DATA, message={"type": "text", "text": "x" * 4097}),
            ["data.message.text"],
        ),
        (s.SEND, _with(SEND_DATA, message={"type": "sticker"}), ["data.message.type"]),
        (s.SEND, _with(SEND_DATA, message={"text": "no type"}), ["data.message.type"]),
        (s.SEND, _with(SEND_DATA, message="Hello"), ["data.message"]),
        (
            s.SEND,
            _with(SEND_DATA, message={"type": "image", "mediaUrl": "ftp://x.io/a.png"}),
            ["data.message.mediaUrl"],
        ),
        (
            s.SEND,
            _with(SEND_DATA, message={"type": "location", "latitude": 91, "longitude": True}),
            ["data.message.latitude", "data.message.longitude"],
        ),
        (
            s.SEND,
            _with(SEND_DATA, message={"type": "location", "latitude": "48.8", "longitude": 2}),
            ["data.message.latitude"],
        ),
        (
            s.SEND,
            _with(SEND_DATA, message={"type": "contact", "contactId": "ana"}),
            ["data.message.contactId"],
        ),
        (s.SEND, _with(SEND_DATA, instanceId="main"), ["data.instanceId"]),
        (
            s.SEND,
            {"to": "+33612345678", "template": {"id": INSTANCE, "variables": {"a": {"b": 1}}}},
            ["data.template.variables.a"],
        ),
        (
            s.SEND,
            {"to": "+33612345678", "template": {"id": INSTANCE, "variables": {"vip": True}}},
            ["data.template.variables.vip"],
        ),
        (
            s.SEND,
            {"to": "+33612345678", "template": {"id": INSTANCE, "variables": {"first name": "A"}}},
            ["data.template.variables.first name"],
        ),
        (
            s.SEND,
            {"to": "+33612345678", "template": {"id": INSTANCE, "custom": {"a": 1}}},
            ["data.template.custom"],
        ),
    ],
)
def test_data_problems_are_reported_on_their_wire_path(
    command_type: str, data: dict[str, Any], expected: list[str]
) -> None:
    assert fields(s.envelope(command_type, data)) == expected


def test_scheduled_at_on_a_send_command_is_refused_pointing_to_schedule() -> None:
    [(field, message)] = problems(s.envelope(s.SEND, SCHEDULE_DATA))
    assert field == "data.scheduledAt"
    assert "msgflash.message.schedule" in message


def test_a_naive_scheduled_at_is_rejected_not_guessed() -> None:
    data = _with(SCHEDULE_DATA, scheduledAt="2026-12-01T08:00:00")
    [(_, message)] = problems(s.envelope(s.SCHEDULE, data))
    assert "offset" in message


def test_three_buttons_are_rejected_with_the_count() -> None:
    data = _with(SEND_DATA, message=_buttons(BUTTON, BUTTON, BUTTON))
    [(_, message)] = problems(s.envelope(s.SEND, data))
    assert "3" in message and "2" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_with(CAMPAIGN_DATA, recipients={"type": "everyone"}), ["data.recipients.type"]),
        (_with(CAMPAIGN_DATA, recipients={}), ["data.recipients.type"]),
        (_with(CAMPAIGN_DATA, recipients="all"), ["data.recipients"]),
        (_with(CAMPAIGN_DATA, recipients={"type": "tags", "value": []}), ["data.recipients.value"]),
        (
            _with(CAMPAIGN_DATA, recipients={"type": "tags", "value": ["vip", " "]}),
            ["data.recipients.value[1]"],
        ),
        (
            _with(CAMPAIGN_DATA, recipients={"type": "explicit", "value": [INSTANCE, "ana"]}),
            ["data.recipients.value[1]"],
        ),
        (_with(CAMPAIGN_DATA, recipients={"type": "explicit"}), ["data.recipients.value"]),
        (_with(CAMPAIGN_DATA, recipients={"type": "group"}), ["data.recipients.groupId"]),
        (
            _with(CAMPAIGN_DATA, recipients={"type": "group", "groupId": "vip"}),
            ["data.recipients.groupId"],
        ),
        (_with(CAMPAIGN_DATA, recipients={"type": "all", "value": []}), ["data.recipients.value"]),
        (_with(CAMPAIGN_DATA, repeat="monthly"), ["data.repeat"]),
        (_with(CAMPAIGN_DATA, schedule="2026-12-01T09:00:00"), ["data.schedule"]),
        (_with(CAMPAIGN_DATA, scheduledAt="2026-12-01T09:00:00Z"), ["data.scheduledAt"]),
        (_with(CAMPAIGN_DATA, name=""), ["data.name"]),
        (
            _with(CAMPAIGN_DATA, message={"type": "location", "latitude": 1, "longitude": 2}),
            ["data.message.type"],
        ),
        (
            _with(CAMPAIGN_DATA, message={"type": "contact", "contactId": INSTANCE}),
            ["data.message.type"],
        ),
        (_with(CAMPAIGN_DATA, template={"id": INSTANCE}), ["data"]),
        (_with(CAMPAIGN_DATA, instance="main", instanceId=INSTANCE), ["data"]),
    ],
)
def test_campaign_problems_are_reported_on_their_wire_path(
    data: dict[str, Any], expected: list[str]
) -> None:
    assert fields(s.envelope(s.CAMPAIGN, data)) == expected


def test_both_content_and_instance_conflicts_are_two_problems_on_data() -> None:
    data = _with(SEND_DATA, template={"id": INSTANCE}, instance="main", instanceId=INSTANCE)
    reported = problems(s.envelope(s.SEND, data))
    assert [field for field, _ in reported] == ["data", "data"]
    assert "instanceId" in reported[0][1] and "template" in reported[1][1]


def test_independent_problems_are_each_reported_once() -> None:
    data = {"to": "12", "scheduledAt": "tomorrow", "message": {"type": "text", "text": ""}}
    assert fields(s.envelope(s.SCHEDULE, data)) == [
        "data.to",
        "data.message.text",
        "data.scheduledAt",
    ]


# --- the model itself ---------------------------------------------------------------------
def test_a_command_cannot_be_built_with_data_of_another_type() -> None:
    data = SendMessageData(to="+33612345678", message=TextMessage(type="text", text="Hi"))
    with pytest.raises(ValidationError):
        Command(specversion="1.0", id="1", source="/a", type=CommandType.CREATE_CAMPAIGN, data=data)


def test_a_command_can_be_built_from_models() -> None:
    data = SendMessageData(to="+33612345678", message=TextMessage(type="text", text="Hi"))
    command = Command(
        specversion="1.0", id="1", source="/a", type=CommandType.SEND_MESSAGE, data=data
    )
    assert command.data is data


def test_commands_are_frozen() -> None:
    command = parse(s.envelope(s.SEND, SEND_DATA))
    with pytest.raises(ValidationError):
        command.id = "other"  # type: ignore[misc]


def test_routing_keys_follow_the_contract() -> None:
    assert dict(ROUTING_KEYS) == {
        CommandType.SCHEDULE_MESSAGE: "message.schedule",
        CommandType.SEND_MESSAGE: "message.send",
        CommandType.CREATE_CAMPAIGN: "campaign.create",
        CommandType.TETHER_CREATE_CAMPAIGN: "tether.campaign.create",
    }


def test_identity_and_key_come_from_source_and_id() -> None:
    command = parse(s.envelope(s.SEND, SEND_DATA, id="42", source="/crm"))
    assert command.identity == CommandIdentity(id="42", source="/crm", type=s.SEND)
    assert command.key == command.identity.key == idempotency_key("/crm", "42")


def test_the_key_is_unambiguous_when_source_or_id_contain_separators() -> None:
    assert idempotency_key("a:b", "c") != idempotency_key("a", "b:c")
    assert idempotency_key("a", ":b") != idempotency_key("a:", "b")


def test_an_identity_without_source_or_id_has_no_key() -> None:
    assert CommandIdentity(id="1", source=None, type=None).key is None
    assert CommandIdentity(id=None, source="/a", type=None).key is None


# --- peek_identity ------------------------------------------------------------------------
def test_peek_reads_a_structured_envelope_even_when_it_is_invalid() -> None:
    raw = structured({"id": "7", "source": "/crm", "type": "msgflash.bogus", "data": 3})
    assert peek_identity(raw) == CommandIdentity(id="7", source="/crm", type="msgflash.bogus")


def test_peek_reads_binary_properties() -> None:
    raw = RawCommand(body=b"garbage", message_id="m", type=s.CAMPAIGN, app_id="/crm")
    assert peek_identity(raw) == CommandIdentity(id="m", source="/crm", type=s.CAMPAIGN)


def test_peek_falls_back_to_properties_when_the_body_is_unreadable() -> None:
    raw = RawCommand(body=b"\xff", message_id="m")
    assert peek_identity(raw) == CommandIdentity(id="m", source=None, type=None)


@s.PROPERTY_SETTINGS
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    message_id=st.none() | st.text(max_size=5),
    type_=st.none() | st.text(max_size=5),
    app_id=st.none() | st.text(max_size=5),
)
def test_peek_never_raises_and_parse_only_raises_invalid_command(
    body: bytes, message_id: str | None, type_: str | None, app_id: str | None
) -> None:
    raw = RawCommand(body=body, message_id=message_id, type=type_, app_id=app_id)
    identity = peek_identity(raw)
    assert isinstance(identity, CommandIdentity)
    try:
        parse_command(raw, max_bytes=MAX)
    except InvalidCommand as exc:
        assert exc.details, "an invalid command always says what is wrong"


SCHEMAS = command_schemas()
VALIDATORS = {kind: jsonschema.Draft202012Validator(schema) for kind, schema in SCHEMAS.items()}


# --- properties over generated commands ---------------------------------------------------
@s.PROPERTY_SETTINGS
@given(envelope=s.valid_commands())
def test_every_valid_command_parses_and_keeps_its_identity(envelope: dict[str, Any]) -> None:
    command = parse(envelope)
    assert (command.id, command.source, command.type.value) == (
        envelope["id"],
        envelope["source"],
        envelope["type"],
    )
    assert peek_identity(structured(envelope)) == command.identity


@s.PROPERTY_SETTINGS
@given(envelope=s.valid_commands())
def test_every_valid_command_matches_its_published_json_schema(envelope: dict[str, Any]) -> None:
    VALIDATORS[envelope["type"]].validate(envelope)


@s.PROPERTY_SETTINGS
@given(case=s.invalid_commands())
def test_every_planted_defect_is_reported_on_its_field(case: tuple[dict[str, Any], str]) -> None:
    envelope, field = case
    reported = problems(envelope)
    assert field in [f for f, _ in reported]
    for _, message in reported:
        assert message and not message.startswith("Input should"), message


def test_command_schemas_pin_the_type_and_its_data() -> None:
    schema = SCHEMAS[s.SCHEDULE]
    assert schema["properties"]["type"]["const"] == s.SCHEDULE
    assert schema["properties"]["data"] == {"$ref": "#/$defs/ScheduleMessageData"}
    assert "CreateCampaignData" not in schema["$defs"]
    jsonschema.Draft202012Validator.check_schema(schema)


def test_command_schemas_reject_what_the_parser_rejects() -> None:
    three = s.envelope(s.SEND, _with(SEND_DATA, message=_buttons(BUTTON, BUTTON, BUTTON)))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(three, SCHEMAS[s.SEND])


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (s.SCHEDULE, {"to": "+33612345678", "scheduledAt": "2026-12-01T08:00:00Z"}),
        (s.SCHEDULE, {**SCHEDULE_DATA, "message": None, "template": None}),
        (s.SEND, {**SEND_DATA, "template": {"id": INSTANCE}}),
        (s.SEND, {**SEND_DATA, "instanceId": INSTANCE, "instance": "main"}),
        (s.CAMPAIGN, {k: v for k, v in CAMPAIGN_DATA.items() if k != "message"}),
    ],
)
def test_the_published_schema_refuses_content_choices_the_parser_refuses(
    kind: str, data: dict[str, Any]
) -> None:
    envelope = s.envelope(kind, data)
    with pytest.raises(InvalidCommand):
        parse(envelope)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(envelope, SCHEMAS[kind])


def test_an_id_over_255_utf8_bytes_is_rejected_on_id() -> None:
    envelope = {
        "specversion": "1.0",
        "id": "é" * 200,  # 200 characters, 400 bytes: would not fit an AMQP message_id
        "source": "tests",
        "type": "msgflash.message.send",
        "data": {
            "instance": "main",
            "to": "+33612345678",
            "message": {"type": "text", "text": "x"},
        },
    }
    with pytest.raises(InvalidCommand) as raised:
        parse_command(RawCommand(json.dumps(envelope).encode()), max_bytes=1 << 20)
    assert [d.field for d in raised.value.details] == ["id"]
