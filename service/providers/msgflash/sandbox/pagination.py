"""Both MsgFlash pagination styles: opaque cursors (messages, contacts, groups, members) and
numbered pages (templates).

A cursor is base64 of ``"<sort value>|<id>"`` like MsgFlash's examples; the sandbox only
needs the id part to find where the previous page stopped.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.providers.msgflash.sandbox.envelope import ApiError, validation_error

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class CursorPage(Generic[Item]):
    items: list[Item]
    next_cursor: str | None
    has_more: bool


def limit_param(query: Mapping[str, str], *, default: int, maximum: int = 100) -> int:
    return _int_param(query, "limit", default=default, low=1, high=maximum)


def page_param(query: Mapping[str, str]) -> int:
    return _int_param(query, "page", default=1, low=1, high=1_000_000)


def _int_param(query: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _bad(name, f"must be an integer from {low} to {high}")
    return value


def encode_cursor(sort_value: str, item_id: str) -> str:
    return base64.urlsafe_b64encode(f"{sort_value}|{item_id}".encode()).decode()


def cursor_page(
    items: Sequence[Item],
    *,
    cursor: str | None,
    limit: int,
    ident: Callable[[Item], str],
    sort_value: Callable[[Item], str],
) -> CursorPage[Item]:
    """The page after ``cursor`` of ``items`` (already in the listing's order)."""
    start = 0
    if cursor:
        wanted = _cursor_id(cursor)
        positions = [index for index, item in enumerate(items) if ident(item) == wanted]
        if not positions:
            raise _bad("cursor", "unknown or expired cursor: start again without one")
        start = positions[0] + 1
    chunk = list(items[start : start + limit])
    has_more = start + limit < len(items)
    next_cursor = encode_cursor(sort_value(chunk[-1]), ident(chunk[-1])) if has_more else None
    return CursorPage(chunk, next_cursor, has_more)


def _cursor_id(cursor: str) -> str:
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad("cursor", "not a cursor returned by this API") from None
    if "|" not in decoded:
        raise _bad("cursor", "not a cursor returned by this API")
    return decoded.rsplit("|", 1)[1]


def _bad(field: str, message: str) -> ApiError:
    return validation_error([{"field": field, "message": message}])
