"""The ``data`` of message commands (contract §3.1): the nine message shapes, buttons, templates.

Names are the relay's wire names (camelCase); ``providers.msgflash.mapping`` turns them into
MsgFlash's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from service.contract.urls import HttpUrl
from service.contract.wire import (
    NOT_BLANK_PATTERN,
    VARIABLE_NAME_PATTERN,
    E164Number,
    Instant,
    ItemCount,
    Label,
    ShortText,
    TagDispatch,
    Text,
    Uuid,
    WireModel,
    finite_scalar,
    problems_error,
)

DisplayText = Annotated[
    str, StringConstraints(min_length=1, max_length=50, pattern=NOT_BLANK_PATTERN)
]
VariableName = Annotated[str, StringConstraints(pattern=VARIABLE_NAME_PATTERN, max_length=100)]
VariableValue = Annotated[str | int | float, BeforeValidator(finite_scalar)]


# --- message shapes -----------------------------------------------------------------------
class TextMessage(WireModel):
    type: Literal["text"]
    text: Text


class _CaptionedMedia(WireModel):
    media_url: HttpUrl
    caption: Text | None = None


class ImageMessage(_CaptionedMedia):
    type: Literal["image"]


class VideoMessage(_CaptionedMedia):
    type: Literal["video"]


class DocumentMessage(_CaptionedMedia):
    type: Literal["document"]


class AudioMessage(WireModel):
    type: Literal["audio"]
    media_url: HttpUrl


class VoiceNoteMessage(WireModel):
    """Same content as audio; WhatsApp shows it as a recorded voice note."""

    type: Literal["voice_note"]
    media_url: HttpUrl


class LocationMessage(WireModel):
    type: Literal["location"]
    latitude: Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]
    name: Label | None = None
    address: Label | None = None


class ContactMessage(WireModel):
    """Shares a contact card; the contact must exist in the MsgFlash account."""

    type: Literal["contact"]
    contact_id: Uuid


# --- buttons ------------------------------------------------------------------------------
class ReplyButton(WireModel):
    kind: Literal["reply"]
    display_text: DisplayText
    id: ShortText


class CopyButton(WireModel):
    kind: Literal["copy"]
    display_text: DisplayText
    copy_code: ShortText


class UrlButton(WireModel):
    kind: Literal["url"]
    display_text: DisplayText
    url: HttpUrl


class CallButton(WireModel):
    kind: Literal["call"]
    display_text: DisplayText
    phone_number: E164Number


class PixButton(WireModel):
    """Brazilian instant payment: the key the payer copies and its kind (cpf, email, ...)."""

    kind: Literal["pix"]
    display_text: DisplayText
    currency: ShortText
    name: ShortText
    key_type: ShortText
    key: ShortText


_BUTTONS = (ReplyButton, CopyButton, UrlButton, CallButton, PixButton)
Button = Annotated[
    ReplyButton | CopyButton | UrlButton | CallButton | PixButton,
    Field(discriminator="kind"),
    BeforeValidator(TagDispatch("kind", _BUTTONS, what="button kind")),
]


class ButtonsMessage(WireModel):
    """Needs a WhatsApp Business number, else MsgFlash answers 403 UNSUPPORTED_FEATURE."""

    type: Literal["buttons"]
    title: Label
    description: Text
    footer: Label | None = None
    buttons: Annotated[tuple[Button, ...], ItemCount(1, 2)]


# --- unions -------------------------------------------------------------------------------
_MESSAGES = (
    TextMessage,
    ImageMessage,
    VideoMessage,
    DocumentMessage,
    AudioMessage,
    VoiceNoteMessage,
    LocationMessage,
    ContactMessage,
    ButtonsMessage,
)
MessageContent = Annotated[
    TextMessage
    | ImageMessage
    | VideoMessage
    | DocumentMessage
    | AudioMessage
    | VoiceNoteMessage
    | LocationMessage
    | ContactMessage
    | ButtonsMessage,
    Field(discriminator="type"),
    BeforeValidator(TagDispatch("type", _MESSAGES, what="message type")),
]


# Pydantic renders the key rule as patternProperties, which lets other keys through: spelt
# out here so the documents refuse every key and value the parser refuses.
_VARIABLES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": VARIABLE_NAME_PATTERN, "maxLength": 100},
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}]},
}


class TemplateRef(WireModel):
    """A MsgFlash template and its ``custom.*`` values, sent flat (never nested under custom)."""

    id: Uuid
    variables: Annotated[dict[VariableName, VariableValue], WithJsonSchema(_VARIABLES_SCHEMA)] = (
        Field(default_factory=dict)
    )


# --- command data -------------------------------------------------------------------------
def choice_problems(
    instance_id: str | None,
    instance: str | None,
    message: object | None,
    template: TemplateRef | None,
) -> list[tuple[tuple[str, ...], str]]:
    """The either/or rules shared by message and campaign data, reported on ``data``."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if instance_id is not None and instance is not None:
        problems.append(((), "set either `instanceId` or `instance`, not both"))
    if message is not None and template is not None:
        problems.append(((), "set exactly one of `message` and `template`, not both"))
    if message is None and template is None:
        problems.append(((), "set exactly one of `message` (direct content) or `template`"))
    return problems


# ``choice_problems`` as JSON Schema, so the documents refuse what the parser refuses: content
# is exactly one of message/template (null counts as absent), and at most one instance field.
CHOICE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"required": ["message"], "properties": {"message": {"type": "object"}}},
        {"required": ["template"], "properties": {"template": {"type": "object"}}},
    ],
    "not": {
        "required": ["instanceId", "instance"],
        "properties": {"instanceId": {"type": "string"}, "instance": {"type": "string"}},
    },
}


class MessageData(WireModel):
    """What message.schedule and message.send share.

    No instance named at all is valid: the relay then uses ``RELAY_DEFAULT_INSTANCE``.
    """

    model_config = ConfigDict(json_schema_extra=CHOICE_SCHEMA)

    instance_id: Uuid | None = None
    instance: ShortText | None = None
    to: E164Number
    message: MessageContent | None = None
    template: TemplateRef | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> MessageData:
        problems = choice_problems(self.instance_id, self.instance, self.message, self.template)
        if problems:
            raise problems_error(problems, self.model_dump(by_alias=True, exclude_none=True))
        return self


class SendMessageData(MessageData):
    """``msgflash.message.send``: sent now. ``scheduledAt`` is rejected, not silently dropped."""


class ScheduleMessageData(MessageData):
    """``msgflash.message.schedule``: a past ``scheduledAt`` makes MsgFlash send at once, so
    ``parse_command`` refuses one that arrives already past."""

    scheduled_at: Instant
