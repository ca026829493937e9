"""Hypothesis strategies for commands as producers put them on the wire (JSON-ready dicts).

``valid_commands()`` yields envelopes that must parse; ``invalid_commands()`` yields
``(envelope, field)`` pairs whose single planted defect must be reported on ``field``.
Reused by the parser, mapping and pipeline tests.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

Json = dict[str, Any]

# Deterministic runs (no example database, fixed seed): a property either always passes or
# always fails, in CI as on a laptop.
PROPERTY_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)

SCHEDULE = "msgflash.message.schedule"
SEND = "msgflash.message.send"
CAMPAIGN = "msgflash.campaign.create"
MESSAGE_TYPES = (
    *("text", "image", "video", "document", "audio", "voice_note"),
    *("location", "contact", "buttons"),
)
CAMPAIGN_MESSAGE_TYPES = tuple(t for t in MESSAGE_TYPES if t not in ("location", "contact"))

# --- leaves -------------------------------------------------------------------------------
uuids = st.uuids().map(str)
e164_numbers = st.builds(
    lambda first, rest: f"+{first}{rest}",
    st.sampled_from("123456789"),
    st.text(string.digits, min_size=7, max_size=14),
)
_printable = st.characters(exclude_categories=("Cs", "Cc"))


def visible_text(max_size: int) -> st.SearchStrategy[str]:
    """Text with at least one visible character, up to ``max_size`` characters."""
    return st.text(_printable, min_size=1, max_size=max_size).filter(lambda s: s.strip() != "")


_hosts = st.from_regex(r"[a-z][a-z0-9-]{0,15}\.(com|io|org|com\.br)", fullmatch=True)
_paths = st.text(string.ascii_letters + string.digits + "-_./", max_size=30)
http_urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https"]),
    _hosts,
    _paths,
)
_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=_offsets
)
instants = st.one_of(
    aware_datetimes.map(lambda moment: moment.isoformat()),
    aware_datetimes.map(
        lambda moment: moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    ),
)
variable_names = st.from_regex(r"[A-Za-z0-9_]{1,30}", fullmatch=True)
variable_values = st.one_of(
    st.text(_printable, max_size=40),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
)
templates = st.fixed_dictionaries(
    {"id": uuids},
    optional={"variables": st.dictionaries(variable_names, variable_values, max_size=5)},
)

# --- messages -----------------------------------------------------------------------------
_display_texts = visible_text(50)
_short = visible_text(40)
buttons = st.one_of(
    st.fixed_dictionaries({"kind": st.just("reply"), "displayText": _display_texts, "id": _short}),
    st.fixed_dictionaries(
        {"kind": st.just("copy"), "displayText": _display_texts, "copyCode": _short}
    ),
    st.fixed_dictionaries(
        {"kind": st.just("url"), "displayText": _display_texts, "url": http_urls}
    ),
    st.fixed_dictionaries(
        {"kind": st.just("call"), "displayText": _display_texts, "phoneNumber": e164_numbers}
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("pix"),
            "displayText": _display_texts,
            "currency": st.just("BRL"),
            "name": _short,
            "keyType": st.sampled_from(["cpf", "cnpj", "email", "phone", "random"]),
            "key": _short,
        }
    ),
)


def _captioned(kind: str) -> st.SearchStrategy[Json]:
    return st.fixed_dictionaries(
        {"type": st.just(kind), "mediaUrl": http_urls}, optional={"caption": visible_text(200)}
    )


def _media(kind: str) -> st.SearchStrategy[Json]:
    return st.fixed_dictionaries({"type": st.just(kind), "mediaUrl": http_urls})


_coordinates = {
    "latitude": st.one_of(st.floats(-90, 90), st.integers(-90, 90)),
    "longitude": st.one_of(st.floats(-180, 180), st.integers(-180, 180)),
}
MESSAGES: dict[str, st.SearchStrategy[Json]] = {
    "text": st.fixed_dictionaries({"type": st.just("text"), "text": visible_text(300)}),
    "image": _captioned("image"),
    "video": _captioned("video"),
    "document": _captioned("document"),
    "audio": _media("audio"),
    "voice_note": _media("voice_note"),
    "location": st.fixed_dictionaries(
        {"type": st.just("location"), **_coordinates},
        optional={"name": visible_text(60), "address": visible_text(120)},
    ),
    "contact": st.fixed_dictionaries({"type": st.just("contact"), "contactId": uuids}),
    "buttons": st.fixed_dictionaries(
        {
            "type": st.just("buttons"),
            "title": visible_text(60),
            "description": visible_text(200),
            "buttons": st.lists(buttons, min_size=1, max_size=2),
        },
        optional={"footer": visible_text(60)},
    ),
}
messages = st.one_of(*(MESSAGES[kind] for kind in MESSAGE_TYPES))
campaign_messages = st.one_of(*(MESSAGES[kind] for kind in CAMPAIGN_MESSAGE_TYPES))

# --- data ---------------------------------------------------------------------------------
_instance_choice = st.one_of(
    st.just({}),
    st.builds(lambda value: {"instanceId": value}, uuids),
    st.builds(lambda value: {"instance": value}, st.one_of(visible_text(30), e164_numbers)),
)


def _content(message_strategy: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    return st.one_of(
        message_strategy.map(lambda message: {"message": message}),
        templates.map(lambda template: {"template": template}),
    )


def _merged(*parts: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    return st.tuples(*parts).map(lambda dicts: {k: v for d in dicts for k, v in d.items()})


send_data = _merged(
    st.fixed_dictionaries({"to": e164_numbers}), _instance_choice, _content(messages)
)
schedule_data = _merged(send_data, st.fixed_dictionaries({"scheduledAt": instants}))
recipients = st.one_of(
    st.just({"type": "all"}),
    st.fixed_dictionaries(
        {"type": st.just("tags"), "value": st.lists(visible_text(20), min_size=1, max_size=4)}
    ),
    st.fixed_dictionaries(
        {"type": st.just("explicit"), "value": st.lists(uuids, min_size=1, max_size=4)}
    ),
    st.fixed_dictionaries({"type": st.just("group"), "groupId": uuids}),
)
campaign_data = _merged(
    st.fixed_dictionaries(
        {"name": visible_text(200), "schedule": instants, "recipients": recipients},
        optional={"repeat": st.sampled_from(["none", "daily", "weekly", "noe"])},
    ),
    _instance_choice,
    _content(campaign_messages),
)
DATA: dict[str, st.SearchStrategy[Json]] = {
    SCHEDULE: schedule_data,
    SEND: send_data,
    CAMPAIGN: campaign_data,
}


# --- envelopes ----------------------------------------------------------------------------
def envelope(command_type: str, data: Json, **attributes: Any) -> Json:
    """A structured-mode command around ``data``; ``attributes`` override or add attributes."""
    return {
        "specversion": "1.0",
        "id": "cmd-1",
        "source": "/orders",
        "type": command_type,
        "data": data,
        **attributes,
    }


def valid_command_of(command_type: str) -> st.SearchStrategy[Json]:
    return st.fixed_dictionaries(
        {
            "specversion": st.just("1.0"),
            "id": st.text(min_size=1, max_size=64),
            "source": st.text(min_size=1, max_size=64),
            "type": st.just(command_type),
            "data": DATA[command_type],
        },
        optional={
            "time": instants,
            "subject": st.text(max_size=30),
            "traceparent": st.just("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "partitionkey": st.text(max_size=10),  # a CloudEvents extension: ignored
        },
    )


def valid_commands() -> st.SearchStrategy[Json]:
    return st.one_of(*(valid_command_of(kind) for kind in DATA))


# --- invalid variants ---------------------------------------------------------------------
# Each entry: (how to break a valid command, the field the problem must be reported on).
# They only apply to commands whose data has the key being broken, hence the predicates.
def _set(path: tuple[str, ...], value: object) -> Any:
    def apply(command: Json) -> Json:
        broken: Json = _deep_copy(command)
        target: Any = broken
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return broken

    return apply


def _drop(path: tuple[str, ...]) -> Any:
    def apply(command: Json) -> Json:
        broken: Json = _deep_copy(command)
        target: Any = broken
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return broken

    return apply


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


_ENVELOPE_DEFECTS = st.sampled_from(
    [
        (_drop(("specversion",)), "specversion"),
        (_set(("specversion",), "0.3"), "specversion"),
        (_drop(("id",)), "id"),
        (_set(("id",), ""), "id"),
        (_drop(("source",)), "source"),
        (_set(("type",), "msgflash.message.delete"), "type"),
        (_drop(("data",)), "data"),
        (_set(("data",), ["not", "an", "object"]), "data"),
        (_set(("time",), "2026-12-01T08:00:00"), "time"),
    ]
)
_MESSAGE_DATA_DEFECTS = st.sampled_from(
    [
        (_set(("data", "to"), "0612345678"), "data.to"),
        (_set(("data", "to"), "+0612345678"), "data.to"),
        (_drop(("data", "to")), "data.to"),
        (_set(("data", "mesage"), {"type": "text", "text": "typo"}), "data.mesage"),
        (_set(("data", "instanceId"), "main"), "data.instanceId"),
        (_set(("data", "instance"), ""), "data.instance"),
    ]
)
_CAMPAIGN_DATA_DEFECTS = st.sampled_from(
    [
        (_set(("data", "repeat"), "monthly"), "data.repeat"),
        (_set(("data", "schedule"), "2026-12-01T08:00:00"), "data.schedule"),
        (_set(("data", "schedule"), 1764576000), "data.schedule"),
        (_set(("data", "recipients"), {"type": "everyone"}), "data.recipients.type"),
        (_set(("data", "recipients"), {"type": "tags", "value": []}), "data.recipients.value"),
        (_set(("data", "recipients"), {"type": "group"}), "data.recipients.groupId"),
        (
            _set(("data", "recipients"), {"type": "explicit", "value": ["x"]}),
            "data.recipients.value[0]",
        ),
        (_drop(("data", "name")), "data.name"),
        (
            _set(("data", "message"), {"type": "location", "latitude": 1, "longitude": 2}),
            "data.message.type",
        ),
    ]
)
_SCHEDULE_DEFECTS = st.sampled_from(
    [
        (_set(("data", "scheduledAt"), "2026-12-01T08:00:00"), "data.scheduledAt"),
        (_set(("data", "scheduledAt"), "next tuesday"), "data.scheduledAt"),
        (_drop(("data", "scheduledAt")), "data.scheduledAt"),
    ]
)
_SEND_DEFECTS = st.sampled_from(
    [(_set(("data", "scheduledAt"), "2026-12-01T08:00:00Z"), "data.scheduledAt")]
)
_MESSAGE_DEFECTS = st.sampled_from(
    [
        (_set(("data", "message", "type"), "sticker"), "data.message.type"),
        (_set(("data", "message", "extra"), 1), "data.message.extra"),
    ]
)


def _broken(
    commands: st.SearchStrategy[Json], defects: st.SearchStrategy[tuple[Any, str]]
) -> st.SearchStrategy[tuple[Json, str]]:
    return st.tuples(commands, defects).map(lambda pair: (pair[1][0](pair[0]), pair[1][1]))


def _with_message(command_type: str) -> st.SearchStrategy[Json]:
    return valid_command_of(command_type).filter(lambda c: "message" in c["data"])


def invalid_commands() -> st.SearchStrategy[tuple[Json, str]]:
    """``(envelope, field)``: a valid command with one defect that must be reported on field."""
    return st.one_of(
        _broken(valid_commands(), _ENVELOPE_DEFECTS),
        _broken(
            st.one_of(valid_command_of(SCHEDULE), valid_command_of(SEND)), _MESSAGE_DATA_DEFECTS
        ),
        _broken(valid_command_of(CAMPAIGN), _CAMPAIGN_DATA_DEFECTS),
        _broken(valid_command_of(SCHEDULE), _SCHEDULE_DEFECTS),
        _broken(valid_command_of(SEND), _SEND_DEFECTS),
        _broken(st.one_of(_with_message(SEND), _with_message(CAMPAIGN)), _MESSAGE_DEFECTS),
    )
