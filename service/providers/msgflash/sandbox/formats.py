"""Wire formats MsgFlash checks: UUIDs, E.164 numbers, ISO-8601 instants and URLs (pure).

Kept apart from ``validation`` because templates, contacts and webhooks use them too.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from service.contract.wire import UUID_PATTERN

_UUID = re.compile(UUID_PATTERN)
# MsgFlash's own E.164 rule, looser than the relay's (which asks for 8 to 15 digits): a plus,
# a non-zero country code digit, 7 to 15 digits in all, nothing else.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# What a person would take for a phone number: digits with the usual separators.
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-]*\d[\d\s().\-]*$")


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and _UUID.match(value) is not None


def is_e164(value: object) -> bool:
    return isinstance(value, str) and _E164.match(value) is not None


def looks_like_phone(value: str) -> bool:
    """True for ``0612 34 56 78`` or ``+0033...``: a number, just not a valid E.164 one.

    MsgFlash answers such recipients with 422 INVALID_DESTINATION, while a value that is not
    a phone number at all (``"hello"``) is a schema error (400 VALIDATION_ERROR).
    """
    return _PHONE_LIKE.match(value) is not None


def parse_instant(value: object) -> datetime | None:
    """An ISO-8601 date-time that carries a UTC offset (``Z`` or ``+02:00``), in UTC; else None.

    A naive date-time is refused: MsgFlash documents scheduled times as UTC instants, and
    guessing a zone would move a message by hours.
    """
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def iso_timestamp(epoch: float) -> str:
    """MsgFlash's timestamp format: UTC with milliseconds, e.g. ``2026-04-01T10:00:00.000Z``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_http_url(value: object) -> bool:
    """An http(s) URL with a host; a URL Python cannot split (``http://[b]/``) is not one."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def is_loopback_url(value: str) -> bool:
    """True when the URL's host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    try:
        host = urlsplit(value).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
