"""Request validation of messages and campaigns, rule by rule from the fact sheet (pure).

Each function returns the VALIDATION_ERROR ``details`` MsgFlash would answer: ``[]`` when the
body is valid, else one ``{field, message}`` per problem. Unknown fields are ignored, like a
real JSON API. Two checks are not schema problems and live elsewhere: a ``to`` that looks
like a phone number but is not E.164 (422 INVALID_DESTINATION, see ``destination_problem``)
and references to records that do not exist (404 NOT_FOUND, checked against the state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.providers.msgflash.sandbox.formats import (
    is_e164,
    is_http_url,
    is_uuid,
    looks_like_phone,
    parse_instant,
)

Problems = list[dict[str, str]]
ContentRule = Callable[[Mapping[str, Any]], Problems]

MESSAGE_TYPES = (
    "text",
    "image",
    "video",
    "audio",
    "document",
    "voice_note",
    "location",
    "contact",
    "buttons",
)
CAMPAIGN_TYPES = tuple(kind for kind in MESSAGE_TYPES if kind not in ("location", "contact"))
MEDIA_TYPES = ("image", "video", "audio", "document", "voice_note")
REPEATS = ("none", "daily", "weekly", "noe")  # "noe": a translation artifact of "none" (§16.1)
RECIPIENT_TYPES = ("all", "tags", "explicit", "group")
# Keys each button kind needs besides displayText (§6.2).
BUTTON_KIND_KEYS: Mapping[str, tuple[str, ...]] = {
    "reply": ("id",),
    "copy": ("copyCode",),
    "url": ("url",),
    "call": ("phoneNumber",),
    "pix": ("currency", "name", "keyType", "key"),
}
MAX_TEXT = 4096
MAX_BUTTONS = 2
MAX_DISPLAY_TEXT = 50


def validate_message_request(body: Mapping[str, Any], *, schedule: bool) -> Problems:
    """``POST /api/v1/messages/send`` (``schedule=False``) or ``/schedule``."""
    problems = _uuid(body, "instanceId", required=True)
    problems += _recipient(body.get("to"))
    problems += _content(body, MESSAGE_TYPES, _content_rules("text", wrong_key="body"))
    problems += _uuid(body, "contactId", required=False)
    problems += _variables(body)
    if schedule:
        problems += _instant(body, "scheduledAt")
    return problems


def validate_campaign_request(body: Mapping[str, Any]) -> Problems:
    """``POST /api/v1/campaigns``: campaigns carry the text in ``body``, not ``text`` (§16.2)."""
    problems = _uuid(body, "instanceId", required=True)
    problems += _text(body, "name", required=True, limit=255)
    problems += _instant(body, "schedule")
    repeat = body.get("repeat")
    if repeat is not None and repeat not in REPEATS:
        problems.append(_problem("repeat", "must be none, daily or weekly"))
    problems += _recipients(body.get("recipients"))
    problems += _content(body, CAMPAIGN_TYPES, _content_rules("body", wrong_key="text"))
    problems += _variables(body)
    return problems


def destination_problem(to: str) -> str | None:
    """Why MsgFlash would refuse this recipient with 422 INVALID_DESTINATION, if it would."""
    if is_e164(to):
        return None
    return f"Invalid destination {to!r}: use the E.164 format, e.g. +33612345678"


# --- shared pieces ---------------------------------------------------------------------


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _uuid(body: Mapping[str, Any], key: str, *, required: bool) -> Problems:
    value = body.get(key)
    if value is None:
        return [_problem(key, "required")] if required else []
    if not is_uuid(value):
        return [_problem(key, "must be a UUID (names and phone numbers are not accepted)")]
    return []


def _text(body: Mapping[str, Any], key: str, *, required: bool, limit: int = MAX_TEXT) -> Problems:
    value = body.get(key)
    if value is None:
        return [_problem(key, "required")] if required else []
    if not isinstance(value, str):
        return [_problem(key, "must be a string")]
    if required and not value.strip():
        return [_problem(key, "must not be empty")]
    if len(value) > limit:
        return [_problem(key, f"must be at most {limit} characters (got {len(value)})")]
    return []


def _media_url(body: Mapping[str, Any]) -> Problems:
    value = body.get("mediaUrl")
    if value is None:
        return [_problem("mediaUrl", "required for media types: a public http(s) URL")]
    if not is_http_url(value):
        return [_problem("mediaUrl", "must be a public http(s) URL")]
    return []


def _recipient(to: object) -> Problems:
    if to is None:
        return [_problem("to", "required: the recipient in E.164 format, e.g. +33612345678")]
    if not isinstance(to, str) or not looks_like_phone(to):
        return [_problem("to", "must be a phone number in E.164 format, e.g. +33612345678")]
    return []  # phone-like but not E.164 is 422 INVALID_DESTINATION, not a schema error


def _instant(body: Mapping[str, Any], key: str) -> Problems:
    value = body.get(key)
    if value is None:
        return [_problem(key, "required: an ISO-8601 UTC date-time, e.g. 2026-04-01T10:00:00Z")]
    if parse_instant(value) is None:
        return [_problem(key, "must be an ISO-8601 date-time with a UTC offset, e.g. ...T10:00Z")]
    return []


def _variables(body: Mapping[str, Any]) -> Problems:
    value = body.get("variables")
    if value is not None and not isinstance(value, Mapping):
        return [_problem("variables", "must be an object of flat name -> value pairs")]
    return []


def _content(
    body: Mapping[str, Any], types: tuple[str, ...], rules: Mapping[str, ContentRule]
) -> Problems:
    """Exactly one mode: direct (``type`` + content) or template (``templateId``)."""
    has_template = body.get("templateId") is not None
    kind = body.get("type")
    if has_template and kind is not None:
        return [_problem("templateId", "give either templateId or type with content, not both")]
    if has_template:
        return _uuid(body, "templateId", required=True)
    if kind is None:
        return [_problem("type", "required: a type with its content, or a templateId")]
    if kind not in types:
        return [_problem("type", f"must be one of: {', '.join(types)}")]
    return rules[kind](body)


def _content_rules(text_key: str, *, wrong_key: str) -> dict[str, ContentRule]:
    def text(body: Mapping[str, Any]) -> Problems:
        problems = _text(body, text_key, required=True)
        if problems and body.get(wrong_key) is not None:
            hint = f"required: this endpoint takes the text in {text_key!r}, not {wrong_key!r}"
            return [_problem(text_key, hint)]
        return problems

    def captioned(body: Mapping[str, Any]) -> Problems:
        return _media_url(body) + _text(body, text_key, required=False)

    rules: dict[str, ContentRule] = {
        "text": text,
        "image": captioned,
        "video": captioned,
        "document": captioned,
        "audio": _media_url,
        "voice_note": _media_url,
        "location": _location,
        "contact": lambda body: _uuid(body, "contactId", required=True),
        "buttons": _buttons_message,
    }
    return rules


def _location(body: Mapping[str, Any]) -> Problems:
    problems: Problems = []
    for key, bound in (("latitude", 90), ("longitude", 180)):
        value = body.get(key)
        if value is None:
            problems.append(_problem(key, "required for type location: a decimal number"))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(_problem(key, "must be a number, not a string"))
        elif not -bound <= value <= bound:
            problems.append(_problem(key, f"must be between -{bound} and {bound}"))
    for key in ("locationName", "locationAddress"):
        problems += _text(body, key, required=False, limit=1024)
    return problems


# --- recipients of a campaign ----------------------------------------------------------


def _recipients(selector: object) -> Problems:
    if not isinstance(selector, Mapping):
        return [_problem("recipients", "required: {type: all|tags|explicit|group, ...}")]
    kind = selector.get("type")
    if kind not in RECIPIENT_TYPES:
        return [_problem("recipients.type", "must be one of: all, tags, explicit, group")]
    if kind == "group":
        if not is_uuid(selector.get("groupId")):
            return [_problem("recipients.groupId", "required for type group: a group id (UUID)")]
        return []
    if kind == "all":
        return []
    values = selector.get("value")
    noun = "tag" if kind == "tags" else "contact id"
    if not isinstance(values, list) or not values:
        return [_problem("recipients.value", f"required for type {kind}: at least one {noun}")]
    check: Callable[[object], bool] = is_uuid if kind == "explicit" else _non_empty_string
    return [
        _problem(f"recipients.value[{index}]", f"must be a {noun}")
        for index, value in enumerate(values)
        if not check(value)
    ]


def _non_empty_string(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


# --- buttons (§6.2) --------------------------------------------------------------------


def _buttons_message(body: Mapping[str, Any]) -> Problems:
    problems = _text(body, "title", required=True, limit=1024)
    problems += _text(body, "description", required=True)
    problems += _text(body, "footer", required=False, limit=1024)
    buttons = body.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        return [*problems, _problem("buttons", "required for type buttons: 1 to 2 buttons")]
    if len(buttons) > MAX_BUTTONS:
        return [
            *problems,
            _problem("buttons", f"at most {MAX_BUTTONS} buttons (got {len(buttons)})"),
        ]
    for index, button in enumerate(buttons):
        problems += _button(f"buttons[{index}]", button)
    return problems


def _button(path: str, button: object) -> Problems:
    if not isinstance(button, Mapping):
        return [_problem(path, "must be an object")]
    problems = _text(button, "displayText", required=True, limit=MAX_DISPLAY_TEXT)
    problems = [_problem(f"{path}.{p['field']}", p["message"]) for p in problems]
    # The kind travels in `title` (send reference, TS type) or `type` (schedule and
    # campaign examples): accept either (§6.2, §16.3).
    by_title, by_type = button.get("title"), button.get("type")
    if by_title is not None and by_type is not None and by_title != by_type:
        return [*problems, _problem(f"{path}.title", "title and type name different kinds")]
    kind = by_title if by_title is not None else by_type
    if not isinstance(kind, str) or kind not in BUTTON_KIND_KEYS:
        kinds = ", ".join(BUTTON_KIND_KEYS)
        return [*problems, _problem(f"{path}.title", f"the button kind must be one of: {kinds}")]
    for key in BUTTON_KIND_KEYS[kind]:
        if not _non_empty_string(button.get(key)):
            problems.append(_problem(f"{path}.{key}", f"required for a {kind} button"))
    if kind == "url" and _non_empty_string(button.get("url")) and not is_http_url(button["url"]):
        problems.append(_problem(f"{path}.url", "must be an http(s) URL"))
    return problems
