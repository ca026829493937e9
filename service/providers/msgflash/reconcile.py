"""Did an unanswered create make its message or campaign anyway? Ask MsgFlash, never resend.

MsgFlash has no idempotency key, so after a timeout, a dropped connection or a holder that died
mid-call, the only way to avoid a duplicate is to look for what the request would have made
in the account's recent messages or campaigns. Matching is a pure function; the search pages
the list, newest first.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
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
    instance_id = payload.get("instanceId")

    async def page(cursor: str | None) -> Mapping[str, Any]:
        return await client.list_messages(
            instance_id=instance_id if isinstance(instance_id, str) else None,
            limit=PAGE_SIZE,
            cursor=cursor,
        )

    def matches(message: Mapping[str, Any]) -> bool:
        return matches_payload(message, payload)

    return await _find_recent(page, "messages", matches, since=since, skew=skew)


def matches_campaign(campaign: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """Could ``campaign`` (as MsgFlash lists it) be the one ``payload`` (a create body) made?

    Compares what the request fixed: instance, name, start time, repeat, recipients, and the
    template or the content (``body``, ``mediaUrl``); a field the payload leaves out is not
    compared.
    """
    if campaign.get("instanceId") != payload.get("instanceId"):
        return False
    if campaign.get("name") != payload.get("name"):
        return False
    if _instant(campaign.get("schedule")) != _instant(payload.get("schedule")):
        return False
    if campaign.get("repeat", "none") not in (payload.get("repeat", "none"), "noe"):
        return False
    if not _same_recipients(campaign.get("recipients"), payload.get("recipients")):
        return False
    fields = ("templateId", "type", "body", "mediaUrl")
    return all(campaign.get(name) == payload[name] for name in fields if name in payload)


async def find_created_campaign(
    client: MsgFlashClient,
    payload: Mapping[str, Any],
    *,
    since: datetime,
    skew: timedelta = CLOCK_SKEW,
) -> dict[str, Any] | None:
    """The one campaign created since ``since`` that matches ``payload`` (as for messages)."""
    instance_id = payload.get("instanceId")

    async def page(cursor: str | None) -> Mapping[str, Any]:
        return await client.list_campaigns(
            instance_id=instance_id if isinstance(instance_id, str) else None,
            limit=PAGE_SIZE,
            cursor=cursor,
        )

    def matches(campaign: Mapping[str, Any]) -> bool:
        return matches_campaign(campaign, payload)

    return await _find_recent(page, "campaigns", matches, since=since, skew=skew)


async def _find_recent(
    page_at: Callable[[str | None], Awaitable[Mapping[str, Any]]],
    items: str,
    matches: Callable[[Mapping[str, Any]], bool],
    *,
    since: datetime,
    skew: timedelta,
) -> dict[str, Any] | None:
    """Page a newest-first list back to ``since`` (less the clock skew) for the one match."""
    if since.tzinfo is None:
        raise ValueError("a reconciliation needs a timezone-aware `since` (UTC)")
    horizon = since - skew
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        page = await page_at(cursor)
        listed = page.get(items) or []
        recent = [
            item for item in listed if isinstance(item, dict) and created_since(item, horizon)
        ]
        found.extend(item for item in recent if matches(item))
        cursor = page.get("nextCursor")
        # Newest first: once a page reaches back past the horizon, older pages cannot match.
        if len(recent) < len(listed) or not page.get("hasMore") or not cursor:
            return _the_only(found)
    log.warning("msgflash_reconcile_search_truncated", pages=MAX_PAGES, matches=len(found))
    return _the_only(found)


def _same_recipients(listed: Any, sent: Any) -> bool:
    if not isinstance(listed, Mapping) or not isinstance(sent, Mapping):
        return bool(listed == sent)
    keys = ("type", "value", "groupId")
    return all(_as_set(listed.get(key)) == _as_set(sent.get(key)) for key in keys if sent.get(key))


def _as_set(value: Any) -> Any:
    return frozenset(value) if isinstance(value, list) else value


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


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
