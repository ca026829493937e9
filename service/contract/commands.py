"""Incoming commands: the CloudEvents 1.0 envelope (structured or binary AMQP form) and parsing.

``parse_command`` is the single door from bytes to a ``Command``; what cannot pass it becomes
``InvalidCommand`` (code INVALID_EVENT) with one ``FieldProblem`` per problem, named by its
wire path (``data.message.buttons[0].displayText``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from service.contract.campaigns import CreateCampaignData
from service.contract.echo import TYPE_ECHO_BYTES, bounded
from service.contract.envelope import RawCommand, peek_attributes, read_envelope, summary
from service.contract.errors import FieldProblem, InvalidCommand
from service.contract.messages import MessageData, ScheduleMessageData, SendMessageData
from service.contract.tether import TetherCampaignData
from service.contract.wire import Instant, describe_error, field_path, utc_millis

__all__ = [
    "DATA_MODELS",
    "DEFAULT_ACCOUNT",
    "PAST_TOLERANCE",
    "ROUTING_KEYS",
    "Command",
    "CommandIdentity",
    "CommandType",
    "CreateCampaignData",
    "MessageData",
    "RawCommand",
    "ScheduleMessageData",
    "SendMessageData",
    "TetherCampaignData",
    "idempotency_key",
    "parse_command",
    "peek_identity",
]


class CommandType(StrEnum):
    SCHEDULE_MESSAGE = "msgflash.message.schedule"
    SEND_MESSAGE = "msgflash.message.send"
    CREATE_CAMPAIGN = "msgflash.campaign.create"
    TETHER_CREATE_CAMPAIGN = "tether.campaign.create"


ROUTING_KEYS: Mapping[CommandType, str] = MappingProxyType(
    {
        CommandType.SCHEDULE_MESSAGE: "message.schedule",
        CommandType.SEND_MESSAGE: "message.send",
        CommandType.CREATE_CAMPAIGN: "campaign.create",
        CommandType.TETHER_CREATE_CAMPAIGN: "tether.campaign.create",
    }
)

DATA_MODELS: Mapping[CommandType, type[BaseModel]] = MappingProxyType(
    {
        CommandType.SCHEDULE_MESSAGE: ScheduleMessageData,
        CommandType.SEND_MESSAGE: SendMessageData,
        CommandType.CREATE_CAMPAIGN: CreateCampaignData,
        CommandType.TETHER_CREATE_CAMPAIGN: TetherCampaignData,
    }
)


# The account of a command that names none (contract §7): the v1 configuration's.
DEFAULT_ACCOUNT = "default"


def idempotency_key(source: str, id_: str) -> str:
    """``(source, id)`` as one string; the length prefix keeps it unambiguous whatever they hold."""
    return f"{len(source)}:{source}:{id_}"


@dataclass(frozen=True, slots=True)
class CommandIdentity:
    """Who sent a command, best effort: enough to address a failure event to its producer."""

    id: str | None
    source: str | None
    type: str | None
    account: str = DEFAULT_ACCOUNT

    @property
    def key(self) -> str | None:
        if self.id is None or self.source is None:
            return None
        return idempotency_key(self.source, self.id)


_UNCHECKED = "data_unchecked"


class Command(BaseModel):
    """A validated command. ``data`` is the model its ``type`` calls for, never another."""

    # CloudEvents extension attributes are legal on the envelope: accepted and ignored.
    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"]
    # 255: the id travels as the AMQP message_id, a short string (shortstr) of at most 255 bytes.
    id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    type: CommandType
    time: Instant | None = None
    subject: Annotated[str, StringConstraints(max_length=1024)] | None = None
    traceparent: Annotated[str, StringConstraints(max_length=512)] | None = None
    # Extension attribute (contract §7). Any short text: an unknown name is ACCOUNT_NOT_FOUND,
    # decided where the accounts are known, not a schema violation.
    account: Annotated[str, StringConstraints(min_length=1, max_length=64)] = DEFAULT_ACCOUNT
    data: ScheduleMessageData | SendMessageData | CreateCampaignData | TetherCampaignData

    @field_validator("id")
    @classmethod
    def _id_fits_amqp(cls, value: str) -> str:
        if len(value.encode()) > 255:
            raise PydanticCustomError(
                "id_too_long", "is over 255 bytes in UTF-8: use a shorter id, such as a UUID"
            )
        return value

    @field_validator("data", mode="before")
    @classmethod
    def _data_for_type(cls, value: object, info: ValidationInfo) -> object:
        command_type = info.data.get("type")
        if command_type is None:
            raise PydanticCustomError(_UNCHECKED, "not checked: `type` is not a known command type")
        model = DATA_MODELS[command_type]
        if isinstance(value, model):
            return value
        if isinstance(value, BaseModel):
            raise PydanticCustomError(
                "data_type",
                "is a {got}, but {type} takes {want}",
                {"got": type(value).__name__, "type": command_type, "want": model.__name__},
            )
        return model.model_validate(value)

    @property
    def identity(self) -> CommandIdentity:
        return CommandIdentity(
            id=self.id, source=self.source, type=self.type.value, account=self.account
        )

    @property
    def key(self) -> str:
        """Idempotency key: the same ``(source, id)`` is sent to MsgFlash once."""
        return idempotency_key(self.source, self.id)

    @property
    def is_campaign(self) -> bool:
        return self.type is CommandType.CREATE_CAMPAIGN

    @property
    def provider(self) -> str:
        """Who the command is for: ``msgflash`` or ``tether`` (the type's first word)."""
        return provider_of(self.type)


def provider_of(command_type: str | None) -> str:
    """The provider a command type belongs to; unknown types count as MsgFlash's (v1)."""
    return "tether" if (command_type or "").startswith("tether.") else "msgflash"


# --- parsing ------------------------------------------------------------------------------
_COMMAND_TYPES = ", ".join(CommandType)
_HINTS: Mapping[tuple[str, str], str] = {
    ("specversion", "missing"): 'is required: set it to "1.0" (CloudEvents 1.0, structured mode)',
    ("specversion", "literal_error"): 'must be "1.0": the relay speaks CloudEvents 1.0',
    ("id", "missing"): "is required: a unique id per command (with `source`, the idempotency key)",
    ("source", "missing"): "is required: a URI that names the producer, e.g. /orders-service",
    ("type", "missing"): f"is required: set it to one of {_COMMAND_TYPES}",
    ("data", "missing"): "is required: the command's content (see the contract, §3 and §8)",
}
_BINARY_HINTS: Mapping[tuple[str, str], str] = {
    ("source", "missing"): "is required: in binary mode set the `cloudEvents_source` (or "
    "`ce-source`) header, or the AMQP `app_id` property, to a URI that names the producer",
}
_MISPLACED_SCHEDULED_AT: Mapping[str, str] = {
    CommandType.SEND_MESSAGE: "is not allowed on msgflash.message.send: publish "
    "msgflash.message.schedule to send later, or remove it to send now",
    CommandType.CREATE_CAMPAIGN: "is not a campaign field: a campaign starts at `schedule`",
}


def parse_command(raw: RawCommand, *, max_bytes: int, now: datetime | None = None) -> Command:
    """Bytes and AMQP properties to a ``Command``, or ``InvalidCommand`` listing every problem.

    Structured mode (the body is the whole envelope) unless the body has no ``specversion`` and
    the message says what it is: then binary mode, where the body is ``data`` and the
    attributes come from the AMQP properties (``message_id``, ``type``, ``app_id``) and, over
    them, from ``cloudEvents_*`` / ``cloudEvents:*`` / ``ce-*`` / ``ce_*`` headers. A missing
    content type is read as JSON, since many AMQP producers do not set it.

    ``now`` is the moment the command first reaches the relay: a schedule in its past is
    refused. None skips that check, for a command whose time may rightly have come since it
    was accepted (a redelivery, a deferred retry, a replay).
    """
    envelope = read_envelope(raw, max_bytes)
    try:
        command = Command.model_validate(envelope.attributes)
    except ValidationError as exc:
        command_type = envelope.attributes.get("type")
        problems = _problems(exc, command_type, binary=envelope.binary)
        raise InvalidCommand(summary(problems), problems) from None
    if now is not None:
        refuse_past_schedule(command, now)
    return command


# A producer's clock may run a little behind the relay's and a command takes a moment to
# arrive: only a schedule further back than this is refused as past.
PAST_TOLERANCE = timedelta(seconds=30)

_PAST_CONSEQUENCE: Mapping[str, str] = {
    "data.scheduledAt": "MsgFlash would send it at once; give a future time, or publish "
    "msgflash.message.send to send now",
    "data.schedule": "give a future time for the campaign to start",
    "data.scheduleDate": "Tether does not document what it does with a past date; give a "
    "future time, or leave the date out to start now",
}


def refuse_past_schedule(command: Command, now: datetime) -> None:
    """A past schedule is almost always a stale or mistyped date: MsgFlash takes a past
    ``scheduledAt`` and sends at once, and what Tether does with a past ``scheduleDate`` is
    undocumented. So it is refused rather than sent at a time nobody asked for."""
    data = command.data
    if isinstance(data, ScheduleMessageData):
        path, moment = "data.scheduledAt", data.scheduled_at
    elif isinstance(data, CreateCampaignData):
        path, moment = "data.schedule", data.schedule
    elif isinstance(data, TetherCampaignData) and data.schedule_date is not None:
        path, moment = "data.scheduleDate", data.schedule_date
    else:
        return
    if moment >= now - PAST_TOLERANCE:
        return
    message = f"{utc_millis(moment)} is in the past: {_PAST_CONSEQUENCE[path]}"
    problems = (FieldProblem(path, message),)
    raise InvalidCommand(summary(problems), problems)


def _problems(
    exc: ValidationError, command_type: object, *, binary: bool
) -> tuple[FieldProblem, ...]:
    problems: list[FieldProblem] = []
    for error in exc.errors(include_url=False):
        if error["type"] == _UNCHECKED:  # the `type` problem already says it all
            continue
        path = field_path(error["loc"]) or "body"
        problems.append(FieldProblem(path, _hint(path, error, command_type, binary=binary)))
    return tuple(problems)


def _hint(path: str, error: ErrorDetails, command_type: object, *, binary: bool) -> str:
    kind = error["type"]
    if binary and (path, kind) in _BINARY_HINTS:
        return _BINARY_HINTS[path, kind]
    if (path, kind) in _HINTS:
        return _HINTS[path, kind]
    if path == "type" and kind == "enum":
        shown = bounded(repr(error["input"]), TYPE_ECHO_BYTES)
        return f"{shown} is not a command the relay knows: use one of {_COMMAND_TYPES}"
    if path == "data.scheduledAt" and kind == "extra_forbidden":
        return _MISPLACED_SCHEDULED_AT.get(str(command_type), describe_error(error))
    return describe_error(error)


# --- best-effort identity -----------------------------------------------------------------
def peek_identity(raw: RawCommand) -> CommandIdentity:
    """Who sent this, as far as can be told, for the failure event of an unparseable command.

    Never raises: any body, any properties.
    """
    id_, source, type_, account = peek_attributes(raw)
    return CommandIdentity(id=id_, source=source, type=type_, account=account or DEFAULT_ACCOUNT)
