"""URLs that MsgFlash is asked to fetch or show (media, url buttons): one rule, checked here. Pure.

The rule is a single pattern, published as the JSON Schema of these fields, so what the
documents accept and what the relay accepts are the same set. It is stricter than RFC 3986
where a URL would surprise someone downstream: no whitespace or control characters (a NUL
in a media URL truncates it in C-based fetchers), no credentials, no raw non-ASCII.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_URL_CHARS = 2048

_LABEL = r"[A-Za-z0-9_-]+"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
_PORT_NUMBER = (
    r"6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}"
)
_PORT = rf"(?::(?:{_PORT_NUMBER}))?"
# Printable ASCII, space excluded: the path, query and fragment as a browser would send them.
_REST = r"(?:[/?#][!-~]*)?"
HTTP_URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://{_HOST}{_PORT}{_REST}$"
_HTTP_URL = re.compile(HTTP_URL_PATTERN)

_EXAMPLE = "such as https://cdn.example.com/photo.jpg"


def url_problem(value: str) -> str | None:
    """Why ``value`` is not a URL the relay passes on, or None when it is."""
    if _HTTP_URL.fullmatch(value) and len(value) <= MAX_URL_CHARS:
        return None
    if len(value) > MAX_URL_CHARS:
        return f"is {len(value)} characters long: at most {MAX_URL_CHARS} are allowed"
    for position, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            return (
                f"holds a space or control character (U+{ord(char):04X}) at position {position}: "
                "percent-encode it (a space is %20) or remove it"
            )
    if not value.isascii():
        return (
            "holds non-ASCII characters: percent-encode them in the path and write an "
            "international host name in its xn-- (punycode) form"
        )
    if not re.match(r"^[Hh][Tt][Tt][Pp][Ss]?://", value):
        return f"must be an absolute http:// or https:// URL that MsgFlash can fetch, {_EXAMPLE}"
    if "@" in value.split("/", 3)[2]:
        return "must not carry credentials (user:password@): use a URL that works without them"
    return f"has no valid host name or port: give an absolute http(s) URL {_EXAMPLE}"


def _checked_url(value: str) -> str:
    problem = url_problem(value)
    if problem is not None:
        raise PydanticCustomError("http_url", problem)
    return value


# Kept as the producer's string: pydantic's URL type would normalise it (trailing slash, case).
HttpUrl = Annotated[
    str,
    AfterValidator(_checked_url),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_URL_CHARS,
            "pattern": HTTP_URL_PATTERN,
        }
    ),
]
