"""Reading a CloudEvent off the wire: size, content type, UTF-8 JSON, structured or binary mode.

The first half of parsing a command, before any model is involved; what fails here is
reported on ``body`` or ``content_type``. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json

from service.contract.echo import ID_ECHO_BYTES, SOURCE_ECHO_BYTES, TYPE_ECHO_BYTES, bounded
from service.contract.errors import FieldProblem, InvalidCommand


@dataclass(frozen=True, slots=True)
class RawCommand:
    """What an adapter (AMQP consumer or HTTP ingress) hands the parser."""

    body: bytes
    content_type: str | None = None
    message_id: str | None = None  # binary mode, v1 convention: CloudEvents id
    type: str | None = None  # binary mode, v1 convention: CloudEvents type
    app_id: str | None = None  # binary mode, v1 convention: CloudEvents source
    headers: Mapping[str, object] = field(default_factory=dict)  # binary mode: attributes


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
    """Structured when the body carries ``specversion``; binary when the properties or the
    CloudEvents headers say what the command is."""
    if isinstance(parsed, dict) and "specversion" in parsed:
        return False
    attributes = header_attributes(raw.headers)
    has_type = bool(raw.type or attributes.get("type"))
    has_id = bool(raw.message_id or attributes.get("id"))
    return has_type and has_id


# CloudEvents AMQP binding (cloudEvents_ / cloudEvents:), and the ce- / ce_ headers that the
# SDKs' HTTP, Kafka and RabbitMQ bindings write.
_ATTRIBUTE_PREFIXES = ("cloudevents_", "cloudevents:", "ce-", "ce_")
# Attribute names are lower-case letters and digits (CloudEvents 1.0); data never travels here.
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]{1,20}")
_NOT_HEADERS = frozenset({"data", "data_base64", "datacontenttype"})


def header_attributes(headers: Mapping[str, object]) -> dict[str, object]:
    """The CloudEvents attributes carried in headers, by attribute name (binary mode)."""
    attributes: dict[str, object] = {}
    for name, value in headers.items():
        attribute = _header_attribute(name.lower())
        if attribute is not None:
            attributes[attribute] = _header_value(attribute, value)
    return attributes


def _header_attribute(name: str) -> str | None:
    if name == "traceparent":  # W3C trace context travels as a plain header too
        return name
    for prefix in _ATTRIBUTE_PREFIXES:
        attribute = name.removeprefix(prefix)
        if attribute != name and _ATTRIBUTE_NAME.fullmatch(attribute):
            return None if attribute in _NOT_HEADERS else attribute
    return None


def _binary_envelope(raw: RawCommand, data: object) -> dict[str, Any]:
    """AMQP properties (the v1 convention) first, the CloudEvents headers over them."""
    envelope: dict[str, Any] = {"specversion": "1.0", "id": raw.message_id, "type": raw.type}
    if raw.app_id:
        envelope["source"] = raw.app_id
    envelope.update(header_attributes(raw.headers))
    envelope["data"] = data
    return envelope


def _header_value(attribute: str, value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime):  # an AMQP 0-9-1 timestamp header: seconds, UTC
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if attribute == "time" and isinstance(value, int) and not isinstance(value, bool):
        # The AMQP binding writes time as an AMQP timestamp: milliseconds since the epoch.
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return value  # reported on `time` by the model
    return value


def peek_attributes(
    raw: RawCommand,
) -> tuple[str | None, str | None, str | None, str | None]:
    """``(id, source, type, account)`` as far as they can be told; never raises, whatever the
    bytes."""
    try:
        envelope = _loose_envelope(raw.body)
    except Exception:  # anything at all: garbage in must still get a failure event out
        envelope = {}
    if _is_binary(raw, envelope):
        binary = _binary_envelope(raw, None)
        found = (
            _identity_text(binary.get("id")),
            _identity_text(binary.get("source")),
            _identity_text(binary.get("type")),
        )
        account = _account_text(binary.get("account"))
    else:
        found = (
            _identity_text(envelope.get("id")) or raw.message_id or None,
            _identity_text(envelope.get("source")) or raw.app_id or None,
            _identity_text(envelope.get("type")) or raw.type or None,
        )
        account = _account_text(envelope.get("account"))
    # Echoed into the failure event and the log line: never whole when oversized.
    id_, source, type_ = found
    return (
        bounded(id_, ID_ECHO_BYTES),
        bounded(source, SOURCE_ECHO_BYTES),
        bounded(type_, TYPE_ECHO_BYTES),
        account,
    )


def _account_text(value: object) -> str | None:
    """An account name fit to echo on a failure event: short text only."""
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


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
