"""The ``data`` of ``msgflash.campaign.create`` (contract §3.2): audience, schedule, content."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from service.contract.messages import (
    CHOICE_SCHEMA,
    AudioMessage,
    ButtonsMessage,
    DocumentMessage,
    ImageMessage,
    TemplateRef,
    TextMessage,
    VideoMessage,
    VoiceNoteMessage,
    choice_problems,
)
from service.contract.wire import (
    Instant,
    ItemCount,
    ShortText,
    TagDispatch,
    Uuid,
    WireModel,
    problems_error,
)


class AllRecipients(WireModel):
    """Every contact of the account."""

    type: Literal["all"]


class TagRecipients(WireModel):
    """Contacts carrying at least one of the tags."""

    type: Literal["tags"]
    value: Annotated[tuple[ShortText, ...], ItemCount(1)]


class ExplicitRecipients(WireModel):
    """These contacts (MsgFlash contact ids)."""

    type: Literal["explicit"]
    value: Annotated[tuple[Uuid, ...], ItemCount(1)]


class GroupRecipients(WireModel):
    """The members of one contact group."""

    type: Literal["group"]
    group_id: Uuid


_RECIPIENTS = (AllRecipients, TagRecipients, ExplicitRecipients, GroupRecipients)
Recipients = Annotated[
    AllRecipients | TagRecipients | ExplicitRecipients | GroupRecipients,
    Field(discriminator="type"),
    BeforeValidator(TagDispatch("type", _RECIPIENTS, what="recipient selector")),
]

# Campaigns take no location or contact messages (MsgFlash §8).
_CAMPAIGN_MESSAGES = (
    TextMessage,
    ImageMessage,
    VideoMessage,
    DocumentMessage,
    AudioMessage,
    VoiceNoteMessage,
    ButtonsMessage,
)
CampaignContent = Annotated[
    TextMessage
    | ImageMessage
    | VideoMessage
    | DocumentMessage
    | AudioMessage
    | VoiceNoteMessage
    | ButtonsMessage,
    Field(discriminator="type"),
    BeforeValidator(TagDispatch("type", _CAMPAIGN_MESSAGES, what="campaign message type")),
]


def _repeat_alias(value: object) -> object:
    # English MsgFlash docs print "noe", a slip of a bulk "non"->"no" edit; the server means none.
    return "none" if value == "noe" else value


Repeat = Annotated[
    Literal["none", "daily", "weekly"],
    BeforeValidator(_repeat_alias),
    WithJsonSchema(
        {
            "type": "string",
            "enum": ["none", "daily", "weekly", "noe"],
            "description": "`noe` (a typo in MsgFlash's English docs) is accepted as `none`",
        }
    ),
]


class CreateCampaignData(WireModel):
    model_config = ConfigDict(json_schema_extra=CHOICE_SCHEMA)

    instance_id: Uuid | None = None
    instance: ShortText | None = None
    name: ShortText
    schedule: Instant
    repeat: Repeat = "none"
    recipients: Recipients
    message: CampaignContent | None = None
    template: TemplateRef | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> CreateCampaignData:
        problems = choice_problems(self.instance_id, self.instance, self.message, self.template)
        if problems:
            raise problems_error(problems, self.model_dump(by_alias=True, exclude_none=True))
        return self
