"""Did an unanswered send create its message anyway? Ask MsgFlash instead of sending twice.

MsgFlash has no idempotency key, so after a timeout, a dropped connection or an expired
idempotency lease, the only way to avoid a duplicate is to look for the message in the
account's recent outbound messages. Matching is a pure function; the search pages the list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from service.providers.msgflash.client import MsgFlashClient

log = structlog.get_logger(__name__)

# Our clock and MsgFlash's may disagree a little: look back slightly before `since`.
CLOCK_SKEW = timedelta(seconds=10)
PAGE_SIZE = 100
# Bounds the search on a busy account; beyond it the message is reported as not found.
MAX_PAGES = 20

_NOT_DIGITS = re.compile(r"\D")


def matches_payload(message: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """Could ``message`` (as MsgFlash lists it) be the one ``payload`` (a send body) created?

    Compares what the request fixed: instance, recipient (digits only), type or template, text
    (sent as ``text``, stored as ``body``) and media URL. A field the payload leaves out is not
    compared, because MsgFlash fills it from the template or leaves it empty.
    """
    if message.get("direction", "outbound") != "outbound":
        return False
    if "instanceId" in payload and message.get("instanceId") != payload["instanceId"]:
        return False
    if _digits(message.get("to")) != _digits(payload.get("to")):
        return False
    if "templateId" in payload:
        meta = message.get("meta")
        if not isinstance(meta, Mapping) or meta.get("templateId") != payload["templateId"]:
            return False
    elif message.get("type") != payload.get("type"):
        return False
    if "text" in payload and message.get("body") != payload["text"]:
        return False
    return "mediaUrl" not in payload or message.get("mediaUrl") == payload["mediaUrl"]


def created_since(message: Mapping[str, Any], since: datetime) -> bool:
    """Was ``message`` created at or after ``since``? A missing or unreadable timestamp counts
    as yes: better to consider one message too many than to miss the one that was created.
    """
    created = _created_at(message)
    return created is None or created >= since


async def find_created_message(
    client: MsgFlashClient,
    payload: Mapping[str, Any],
    *,
    since: datetime,
    skew: timedelta = CLOCK_SKEW,
) -> dict[str, Any] | None:
    """The one message created since ``since`` (timezone-aware) that matches ``payload``.

    ``None`` when nothing matches, and also when several do: then the matches cannot be told
    apart from earlier legitimate sends of the same content.
    """
    if since.tzinfo is None:
        raise ValueError("find_created_message needs a timezone-aware `since` (UTC)")
    horizon = since - skew
    instance_id = payload.get("instanceId")
    matches: list[dict[str, Any]] = []
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        page = await client.list_messages(
            instance_id=instance_id if isinstance(instance_id, str) else None,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        messages = page.get("messages") or []
        recent = [m for m in messages if isinstance(m, dict) and created_since(m, horizon)]
        matches.extend(m for m in recent if matches_payload(m, payload))
        cursor = page.get("nextCursor")
        # Newest first: once a page reaches back past the horizon, older pages cannot match.
        if len(recent) < len(messages) or not page.get("hasMore") or not cursor:
            return _the_only(matches)
    log.warning("msgflash_reconcile_search_truncated", pages=MAX_PAGES, matches=len(matches))
    return _the_only(matches)


def _the_only(matches: list[dict[str, Any]]) -> dict[str, Any] | None:
    return matches[0] if len(matches) == 1 else None


def _digits(value: Any) -> str:
    return _NOT_DIGITS.sub("", value) if isinstance(value, str) else ""


def _created_at(message: Mapping[str, Any]) -> datetime | None:
    value = message.get("createdAt")
    if not isinstance(value, str):
        return None
    try:
        created = datetime.fromisoformat(value)
    except ValueError:
        return None
    return created if created.tzinfo is not None else created.replace(tzinfo=UTC)
