"""Command data to MsgFlash request bodies (fact sheet §6 and §8). Pure.

The two endpoints disagree on one name: ``/messages/send`` and ``/messages/schedule`` take
the text and captions in ``text``, ``/campaigns`` in ``body``. Everything else is shared.
Absent optionals are left out, never sent as null.
"""

from __future__ import annotations

from typing import Any, assert_never

from service.contract.campaigns import CampaignContent, CreateCampaignData
from service.contract.messages import (
    AudioMessage,
    Button,
    ButtonsMessage,
    ContactMessage,
    DocumentMessage,
    ImageMessage,
    LocationMessage,
    MessageContent,
    ScheduleMessageData,
    SendMessageData,
    TemplateRef,
    TextMessage,
    VideoMessage,
    VoiceNoteMessage,
)
from service.contract.wire import utc_millis

_MESSAGE_TEXT_KEY = "text"
_CAMPAIGN_TEXT_KEY = "body"


def to_message_payload(
    data: ScheduleMessageData | SendMessageData, instance_id: str
) -> dict[str, Any]:
    """Body of ``POST /api/v1/messages/send`` or ``/schedule`` (which adds ``scheduledAt``)."""
    payload: dict[str, Any] = {"instanceId": instance_id, "to": data.to}
    payload |= _content(data.message, data.template, _MESSAGE_TEXT_KEY)
    if isinstance(data, ScheduleMessageData):
        payload["scheduledAt"] = utc_millis(data.scheduled_at)
    return payload


def to_campaign_payload(data: CreateCampaignData, instance_id: str) -> dict[str, Any]:
    """Body of ``POST /api/v1/campaigns``; ``repeat`` is always explicit, never ``noe``."""
    payload: dict[str, Any] = {
        "instanceId": instance_id,
        "name": data.name,
        "schedule": utc_millis(data.schedule),
        "repeat": data.repeat,
        "recipients": data.recipients.model_dump(mode="json", by_alias=True),
    }
    payload |= _content(data.message, data.template, _CAMPAIGN_TEXT_KEY)
    return payload


def _content(
    message: MessageContent | CampaignContent | None,
    template: TemplateRef | None,
    text_key: str,
) -> dict[str, Any]:
    if message is not None:
        return _direct(message, text_key)
    if template is not None:
        return _template(template)
    raise ValueError("command data holds neither message nor template")  # models forbid it


def _template(template: TemplateRef) -> dict[str, Any]:
    # Flat: MsgFlash maps each entry to `custom.<name>` itself; nesting under `custom` breaks it.
    fields: dict[str, Any] = {"templateId": template.id}
    if template.variables:
        fields["variables"] = dict(template.variables)
    return fields


def _direct(message: MessageContent | CampaignContent, text_key: str) -> dict[str, Any]:
    match message:
        case TextMessage():
            return {"type": message.type, text_key: message.text}
        case ImageMessage() | VideoMessage() | DocumentMessage():
            return _present(
                {"type": message.type, "mediaUrl": message.media_url, text_key: message.caption}
            )
        case AudioMessage() | VoiceNoteMessage():
            return {"type": message.type, "mediaUrl": message.media_url}
        case LocationMessage():
            return _present(
                {
                    "type": message.type,
                    "latitude": message.latitude,
                    "longitude": message.longitude,
                    "locationName": message.name,
                    "locationAddress": message.address,
                }
            )
        case ContactMessage():
            return {"type": message.type, "contactId": message.contact_id}
        case ButtonsMessage():
            return _present(
                {
                    "type": message.type,
                    "title": message.title,
                    "description": message.description,
                    "footer": message.footer,
                    "buttons": [_button(button) for button in message.buttons],
                }
            )
        case _:
            assert_never(message)


def _button(button: Button) -> dict[str, Any]:
    # The kind goes under `title` as in the send reference and the TS type; the schedule and
    # campaign examples show `type` instead, but `title` is the documented field (§6.2, §16.3).
    return {"title": button.kind, **button.model_dump(mode="json", by_alias=True, exclude={"kind"})}


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}
