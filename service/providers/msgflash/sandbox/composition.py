"""What a message says, from a validated request: direct content or a rendered template.

The stored text is ``body`` whatever the request called it (``text`` on sends, §16.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.providers.msgflash.sandbox.envelope import ApiError
from service.providers.msgflash.sandbox.records import TemplateRecord
from service.providers.msgflash.sandbox.templating import (
    TemplateSyntaxError,
    render,
    template_variables,
)

MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "voice_note"})
_CAPTIONED = frozenset({"image", "video", "document"})


@dataclass(frozen=True, slots=True)
class Content:
    type: str
    body: str | None
    media_url: str | None
    meta: dict[str, Any] = field(default_factory=dict)


def direct_content(request: Mapping[str, Any], *, text_key: str) -> Content:
    kind = str(request["type"])
    if kind == "text":
        return Content(kind, request[text_key], None)
    if kind in MEDIA_TYPES:
        caption = request.get(text_key) if kind in _CAPTIONED else None
        return Content(kind, caption, request["mediaUrl"])
    if kind == "location":
        location = {
            "latitude": request["latitude"],
            "longitude": request["longitude"],
            "name": request.get("locationName"),
            "address": request.get("locationAddress"),
        }
        return Content(kind, request.get("locationName"), None, {"location": location})
    if kind == "buttons":
        return Content(kind, request["description"], None, {"interactive": _interactive(request)})
    return Content(kind, None, None)  # contact: the card is the contactId


def _interactive(request: Mapping[str, Any]) -> dict[str, Any]:
    """Buttons as stored: the kind always under ``title``, whichever key carried it."""
    buttons = []
    for button in request["buttons"]:
        stored = {key: value for key, value in button.items() if key != "type"}
        stored["title"] = button.get("title", button.get("type"))
        buttons.append(stored)
    return {
        "title": request["title"],
        "description": request["description"],
        "footer": request.get("footer"),
        "buttons": buttons,
    }


def check_template(template: TemplateRecord) -> None:
    """TEMPLATE_INVALID for a broken placeholder or a media template without its media."""
    try:
        template_variables(template.body)
    except TemplateSyntaxError as exc:
        raise ApiError(400, "TEMPLATE_INVALID", f"Template {template.name!r}: {exc}") from None
    if template.type in MEDIA_TYPES and not template.media_url:
        message = f"Template {template.name!r} is a {template.type} template without a mediaUrl"
        raise ApiError(400, "TEMPLATE_INVALID", message)


def template_content(template: TemplateRecord, context: Mapping[str, str]) -> Content:
    """The template rendered for one send; unresolved variables refuse the send (§7)."""
    check_template(template)
    rendering = render(template.body, context)
    if rendering.missing:
        raise ApiError(
            400,
            "TEMPLATE_VARIABLES_MISSING",
            "Missing template variables: " + ", ".join(rendering.missing),
            [{"field": path, "message": _how_to_resolve(path)} for path in rendering.missing],
        )
    meta = {"templateId": template.id, "usedVariables": list(rendering.used)}
    return Content(template.type, rendering.text, template.media_url, meta)


def _how_to_resolve(path: str) -> str:
    namespace, _, rest = path.partition(".")
    if namespace == "custom":
        return f"no value: pass it flat in variables, e.g. {{{rest!r}: ...}}"
    if namespace == "contact":
        return "no value: pass a contactId whose contact has this field"
    return f"no value for {path} in the {namespace} context"
