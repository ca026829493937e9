"""Building blocks of the command models: the wire conventions, constrained types, tagged unions,
and the translation of validation errors into ``FieldProblem``s that name wire fields.

Pure: shared by ``messages``, ``campaigns`` and ``commands``; no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_core import core_schema as cs

from service.contract.errors import FieldProblem


class WireModel(BaseModel):
    """Frozen, camelCase on the wire, unknown fields rejected (a typo must not drop content)."""

    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )


# --- constrained values -------------------------------------------------------------------
# ``[0-9]`` and not ``\d``: pydantic's regex engine treats ``\d`` as any Unicode digit.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
E164_PATTERN = r"^\+[1-9][0-9]{7,14}$"
OBJECT_ID_PATTERN = r"^[0-9a-fA-F]{24}$"  # Tether's ids: MongoDB ObjectIds
VARIABLE_NAME_PATTERN = r"^[A-Za-z0-9_]+$"
_ISO_DATE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")

# Searched, not anchored: one character Python's str.strip() would keep (the regex engine's
# \s lacks the \x1c-\x1f separators that strip() removes).
NOT_BLANK_PATTERN = r"[^\s\x1c-\x1f]"

Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
E164Number = Annotated[str, StringConstraints(pattern=E164_PATTERN)]
ObjectId = Annotated[str, StringConstraints(pattern=OBJECT_ID_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NOT_BLANK_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NOT_BLANK_PATTERN)]
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK_PATTERN)
]


def _iso_text(value: object) -> object:
    """Only ISO 8601 text (or a datetime): pydantic alone would also take Unix timestamps."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE_TIME.match(value)):
        return value
    raise PydanticCustomError(
        "iso_instant",
        "must be an ISO 8601 date-time with a UTC offset, e.g. 2026-12-01T08:00:00Z",
    )


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC counterpart
        raise PydanticCustomError(
            "instant_range", "is outside the representable range: use a realistic date"
        ) from None


# Normalised to UTC once, here: mapping and events format it without re-checking.
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_utc)]


def utc_millis(moment: datetime) -> str:
    """MsgFlash's timestamp form: UTC, milliseconds, ``Z`` (``2026-12-01T08:00:00.000Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finite_scalar(value: object) -> object:
    """A string or a finite number, nothing else (booleans are ints to Python: reject them)."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise PydanticCustomError(
        "scalar_type",
        "must be a string or a finite number (no booleans, lists or objects): "
        "template variables are sent flat",
    )


@dataclass(frozen=True, slots=True)
class ItemCount:
    """Bounds on an array's length, checked on the input before its items.

    ``Field(min_length=...)`` counts the items that validated, so three bad buttons would be
    reported as "too few"; counting the input reports what the producer actually sent.
    """

    min_items: int
    max_items: int | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return cs.no_info_before_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        bounds = {"minItems": self.min_items}
        if self.max_items is not None:
            bounds["maxItems"] = self.max_items
        return {**handler(schema), **bounds}

    def _check(self, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value  # the array type reports it
        if len(value) < self.min_items:
            raise PydanticCustomError(
                "too_few_items", "must hold at least {min} item(s)", {"min": self.min_items}
            )
        if self.max_items is not None and len(value) > self.max_items:
            raise PydanticCustomError(
                "too_many_items",
                "holds {count} items; at most {max} are allowed: remove {extra}",
                {"count": len(value), "max": self.max_items, "extra": len(value) - self.max_items},
            )
        return value


# --- tagged unions ------------------------------------------------------------------------
class TagDispatch:
    """Before-validator of a discriminated union: picks the member by its tag and validates it.

    Pydantic's own tagged union puts the tag into error locations (``message.text.text``);
    dispatching first keeps them as wire paths (``message.text``) and lets an unknown tag be
    reported on the tag field itself with the list of valid values.
    """

    def __init__(self, key: str, members: tuple[type[BaseModel], ...], *, what: str) -> None:
        self._key = key
        self._members = members
        self._by_tag = {_tag_of(member, key): member for member in members}
        self._what = what

    def __call__(self, value: object) -> object:
        if isinstance(value, self._members):
            return value
        if not isinstance(value, Mapping):
            raise PydanticCustomError(
                "object_type", "must be a JSON object with a `{key}` field", {"key": self._key}
            )
        tag = value.get(self._key)
        member = self._by_tag.get(tag) if isinstance(tag, str) else None
        if member is None:
            raise _error_at(self._key, tag, self._unknown_tag_message(tag))
        return member.model_validate(value)

    def _unknown_tag_message(self, tag: object) -> str:
        allowed = ", ".join(self._by_tag)
        if tag is None:
            return f"is required: set it to the {self._what}, one of {allowed}"
        return f"{tag!r} is not a known {self._what}: use one of {allowed}"


def _tag_of(member: type[BaseModel], key: str) -> str:
    tags: tuple[object, ...] = getattr(member.model_fields[key].annotation, "__args__", ())
    (tag,) = tags  # each member pins its tag with a one-value Literal
    return str(tag)


def _error_at(field: str, value: object, message: str) -> ValidationError:
    detail = InitErrorDetails(
        type=PydanticCustomError("relay_problem", message), loc=(field,), input=value
    )
    return ValidationError.from_exception_data("relay", [detail])


def problems_error(problems: list[tuple[tuple[str, ...], str]], value: object) -> ValidationError:
    """Several problems of one object at once (each at a location relative to it)."""
    details = [
        InitErrorDetails(type=PydanticCustomError("relay_problem", message), loc=loc, input=value)
        for loc, message in problems
    ]
    return ValidationError.from_exception_data("relay", details)


# --- validation errors -> FieldProblems ---------------------------------------------------
def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a wire path: ``data.message.buttons[0].displayText``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":  # pydantic's marker for "the key of a mapping entry"
            path = f"{path}.{part}" if path else part
    return path


def field_problems(exc: ValidationError) -> tuple[FieldProblem, ...]:
    """One ``FieldProblem`` per pydantic error, with a message that says what to do."""
    return tuple(
        FieldProblem(field_path(error["loc"]) or "body", describe_error(error))
        for error in exc.errors(include_url=False)
    )


_PATTERN_MESSAGES = {
    E164_PATTERN: "must be an E.164 number: '+' then 8 to 15 digits, e.g. +33612345678",
    UUID_PATTERN: "must be a UUID such as 3f2b1c9e-8d4a-4e6b-9c1d-2a3b4c5d6e7f (the MsgFlash id)",
    OBJECT_ID_PATTERN: "must be a Tether id: 24 hexadecimal characters, such as "
    "665f1a0c0e0a4b001a2c9f01",
    VARIABLE_NAME_PATTERN: "variable names may only hold letters, digits and '_'",
    NOT_BLANK_PATTERN: "must not be blank: give some visible text",
}


def _pattern_message(error: ErrorDetails) -> str:
    pattern = str(error.get("ctx", {}).get("pattern", ""))
    return _PATTERN_MESSAGES.get(pattern, f"does not match the expected format {pattern}")


def _too_long(error: ErrorDetails) -> str:
    limit = error.get("ctx", {}).get("max_length")
    return f"is too long: at most {limit} characters allowed, shorten it"


def _expected(error: ErrorDetails) -> str:
    return f"must be one of {error.get('ctx', {}).get('expected')}"


def _bound(error: ErrorDetails) -> str:
    ctx = error.get("ctx", {})
    words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
    return " and ".join(f"must be {words[k]} {v:g}" for k, v in ctx.items() if k in words)


_WHEN_MISSING = "is required but missing: add it"
_NOT_A_DATE = "must be an ISO 8601 date-time with a UTC offset, e.g. 2026-12-01T08:00:00Z"

_MESSAGES: dict[str, str | Callable[[ErrorDetails], str]] = {
    "missing": _WHEN_MISSING,
    "extra_forbidden": "is not a known field: remove it or correct its spelling",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "string_too_long": _too_long,
    "string_pattern_mismatch": _pattern_message,
    "literal_error": _expected,
    "enum": _expected,
    "timezone_aware": "has no UTC offset: add one, e.g. 2026-12-01T08:00:00Z or "
    "2026-12-01T09:00:00+01:00 (times without an offset are rejected, not guessed)",
    "datetime_type": _NOT_A_DATE,
    "datetime_parsing": _NOT_A_DATE,
    "datetime_from_date_parsing": _NOT_A_DATE,
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "int_type": "must be an integer",
    "greater_than_equal": _bound,
    "less_than_equal": _bound,
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "tuple_type": "must be a JSON array",
}


def describe_error(error: ErrorDetails) -> str:
    """A pydantic error as a sentence for producers: what is wrong and what to do."""
    known = _MESSAGES.get(error["type"])
    if known is None:
        return str(error["msg"]).removeprefix("Value error, ")
    return known if isinstance(known, str) else known(error)
