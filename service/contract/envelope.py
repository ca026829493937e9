"""Reading a CloudEvent off the wire: size, content type, UTF-8 JSON, structured or binary mode.

The first half of parsing a command, before any model is involved; what fails here is
reported on ``body`` or ``content_type``. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json

from service.contract.errors import FieldProblem, InvalidCommand


@dataclass(frozen=True, slots=True)
class RawCommand:
    """What an adapter (AMQP consumer or HTTP ingress) hands the parser."""

    body: bytes
    content_type: str | None = None
    message_id: str | None = None  # binary mode: CloudEvents id
    type: str | None = None  # binary mode: CloudEvents type (AMQP `type` property)
    app_id: str | None = None  # binary mode: CloudEvents source
    headers: Mapping[str, object] = field(default_factory=dict)  # binary mode: ce extensions


@dataclass(frozen=True, slots=True)
class Envelope:
    """The attributes and data of a command, as read; ``binary`` says where they came from."""

    attributes: dict[str, Any]
    binary: bool


_JSON_MEDIA_TYPES = frozenset({"application/cloudevents+json", "application/json"})


def read_envelope(raw: RawCommand, max_bytes: int) -> Envelope:
    """The envelope of ``raw`` (see ``parse_command`` for the modes), or ``InvalidCommand``."""
    if len(raw.body) > max_bytes:
        raise invalid(
            "body",
            f"is {len(raw.body)} bytes, over the {max_bytes}-byte limit (RELAY_MAX_BODY_BYTES): "
            "send large media by URL (`mediaUrl`), not inline",
        )
    _check_content_type(raw.content_type)
    parsed = _json(raw.body)
    if _is_binary(raw, parsed):
        return Envelope(_binary_envelope(raw, parsed), binary=True)
    if not isinstance(parsed, dict):
        raise invalid(
            "body",
            f"is a JSON {_json_kind(parsed)}, not an object: publish the CloudEvents envelope "
            '{"specversion": "1.0", "id": ..., "source": ..., "type": ..., "data": {...}}',
        )
    return Envelope(parsed, binary=False)


def _check_content_type(content_type: str | None) -> None:
    if not content_type:
        return
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() not in _JSON_MEDIA_TYPES:
        raise invalid(
            "content_type",
            f"{content_type!r} is not accepted: publish JSON with content type "
            "application/cloudevents+json (structured) or application/json",
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise invalid("content_type", f"charset {charset!r} is not accepted: use utf-8")


def _json(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(
            "body", f"is not UTF-8 ({exc.reason} at byte {exc.start}): encode it as UTF-8"
        ) from None
    try:
        return from_json(text, allow_inf_nan=False)
    except ValueError as exc:
        raise invalid("body", f"is not valid JSON ({exc}): publish a JSON object") from None


def _json_kind(value: object) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null")


def _is_binary(raw: RawCommand, parsed: object) -> bool:
    structured = isinstance(parsed, dict) and "specversion" in parsed
    return bool(raw.type and raw.message_id) and not structured


_EXTENSION_PREFIXES = ("cloudevents_", "cloudevents:", "ce_", "ce-")
_HEADER_ATTRIBUTES = frozenset({"specversion", "time", "subject", "traceparent"})


def _binary_envelope(raw: RawCommand, data: object) -> dict[str, Any]:
    envelope: dict[str, Any] = {"specversion": "1.0", "id": raw.message_id, "type": raw.type}
    if raw.app_id:
        envelope["source"] = raw.app_id
    for name, value in raw.headers.items():
        attribute = _header_attribute(name.lower())
        if attribute is not None:
            envelope[attribute] = _header_text(value)
    envelope["data"] = data
    return envelope


def _header_attribute(name: str) -> str | None:
    if name == "traceparent":  # W3C trace context travels as a plain header too
        return name
    for prefix in _EXTENSION_PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :] in _HEADER_ATTRIBUTES:
            return name[len(prefix) :]
    return None


def _header_text(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime):  # an AMQP timestamp header: seconds, UTC
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def peek_attributes(raw: RawCommand) -> tuple[str | None, str | None, str | None]:
    """``(id, source, type)`` as far as they can be told; never raises, whatever the bytes."""
    try:
        envelope = _loose_envelope(raw.body)
    except Exception:  # anything at all: garbage in must still get a failure event out
        envelope = {}
    if _is_binary(raw, envelope):
        return raw.message_id, raw.app_id or None, raw.type
    return (
        _identity_text(envelope.get("id")) or raw.message_id or None,
        _identity_text(envelope.get("source")) or raw.app_id or None,
        _identity_text(envelope.get("type")) or raw.type or None,
    )


_PEEK_MAX_BYTES = 4 * 1024 * 1024


def _loose_envelope(body: bytes) -> dict[str, Any]:
    if len(body) > _PEEK_MAX_BYTES:
        return {}
    parsed = from_json(body.decode("utf-8", errors="replace"), allow_inf_nan=True)
    return parsed if isinstance(parsed, dict) else {}


def _identity_text(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def summary(problems: tuple[FieldProblem, ...]) -> str:
    """The ``InvalidCommand`` message: the first problems inline, the rest in ``details``."""
    shown = "; ".join(f"{p.field}: {p.message}" for p in problems[:3])
    more = f" (and {len(problems) - 3} more in details)" if len(problems) > 3 else ""
    return f"invalid command: {shown}{more}"


def invalid(field_name: str, message: str) -> InvalidCommand:
    """An ``InvalidCommand`` with one problem."""
    problem = FieldProblem(field_name, message)
    return InvalidCommand(summary((problem,)), (problem,))
