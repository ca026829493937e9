"""Did an unanswered create make its message or campaign anyway? Ask MsgFlash, never resend.

MsgFlash has no idempotency key, so after a timeout, a dropped connection or a holder that died
mid-call, the only way to avoid a duplicate is to look for what the request would have made
in the account's recent messages or campaigns. Matching is a pure function; the search pages
the list, newest first.

Commands with the same content (one text to one recipient, sent by many commands) cannot be
told apart by content: several messages match. Each is then given to at most one command
through an ``Attribution`` (the state store), so that as many commands find a message as
messages were created, and the others know theirs was never created. Only *settled* matches
are given away: created long enough ago (``settled_before``) that a call answered for them
has had time to record its completion. A recent match that nobody holds may still be claimed
by its answered caller, so it leaves the search undecided (``ReconcileUndecided``): the
caller waits and looks again rather than take it or resend.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

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


class Attribution(Protocol):
    """Which listed messages are still free to be claimed by an unanswered call."""

    async def take(self, message_id: str, taker: str) -> bool:
        """True for the first ``taker`` of a message and again for that taker only (a reply
        lost in transit must not make the message look someone else's); never for one that
        a finished command already holds."""
        ...

    async def held(self, message_id: str) -> bool:
        """Whether a finished command or an earlier ``take`` already holds the message."""
        ...


class ReconcileUndecided(Exception):
    """Recent matches nobody holds yet: whether one is this call's cannot be known now."""


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
    attribution: Attribution | None = None,
    settled_before: datetime | None = None,
    taker: str = "",
) -> dict[str, Any] | None:
    """The message created since ``since`` (timezone-aware) that matches ``payload``.

    With ``attribution``: the oldest settled match no other command holds, taken for
    ``taker``; ``ReconcileUndecided`` when there is none but a recent match is held by
    nobody. Without: the only match, and ``None`` when several match, as they cannot be told
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

    found = await _find_recent(page, "messages", matches, since=since, skew=skew)
    if attribution is None:
        return _the_only(found)
    return await _attribute(found, attribution, settled_before or datetime.now(UTC), taker)


async def _attribute(
    matches: list[dict[str, Any]], attribution: Attribution, settled_before: datetime, taker: str
) -> dict[str, Any] | None:
    """The oldest settled match nobody holds, taken; see the module docstring."""
    oldest_first: list[dict[str, Any]] = matches[::-1]  # the listing is newest first
    settled = [m for m in oldest_first if not created_since(m, settled_before)]
    for candidate in settled:
        if await attribution.take(str(candidate.get("id")), taker):
            return candidate
    for recent in oldest_first[len(settled) :]:
        if not await attribution.held(str(recent.get("id"))):
            raise ReconcileUndecided(
                f"message {recent.get('id')} matches and is recent, but no command holds it yet"
            )
    return None


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
    if _repeat(campaign.get("repeat", "none")) != payload.get("repeat", "none"):
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

    return _the_only(await _find_recent(page, "campaigns", matches, since=since, skew=skew))


async def _find_recent(
    page_at: Callable[[str | None], Awaitable[Mapping[str, Any]]],
    items: str,
    matches: Callable[[Mapping[str, Any]], bool],
    *,
    since: datetime,
    skew: timedelta,
) -> list[dict[str, Any]]:
    """Page a newest-first list back to ``since`` (less the clock skew): every match."""
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
            return found
    log.warning("msgflash_reconcile_search_truncated", pages=MAX_PAGES, matches=len(found))
    return found


def _same_recipients(listed: Any, sent: Any) -> bool:
    if not isinstance(listed, Mapping) or not isinstance(sent, Mapping):
        return bool(listed == sent)
    keys = ("type", "value", "groupId")
    return all(_as_set(listed.get(key)) == _as_set(sent.get(key)) for key in keys if sent.get(key))


def _as_set(value: Any) -> Any:
    return frozenset(value) if isinstance(value, list) else value


def _repeat(listed: Any) -> Any:
    """MsgFlash's docs also spell "none" as "noe": a campaign listed so is one that does not
    repeat, and nothing else."""
    return "none" if listed == "noe" else listed


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
