"""MsgFlash's routes and response envelope, as pure data and functions (no I/O).

``{data: ...}`` on success, ``{error: {code, message, details?}}`` otherwise; anything else is
described (with secrets scrubbed) in a ``MsgFlashError`` rather than trusted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic_core import from_json

from service.contract.errors import MSGFLASH_BAD_RESPONSE, FieldProblem, MsgFlashError
from service.logs import redact_text
from service.providers.common.endpoint import Endpoint
from service.secrets import fingerprint

_KEY_PREFIX = re.compile(r"^msgf_(live|team)_")
_SNIPPET_CHARS = 200


SEND_MESSAGE = Endpoint("POST", "/api/v1/messages/send")
SCHEDULE_MESSAGE = Endpoint("POST", "/api/v1/messages/schedule")
CREATE_CAMPAIGN = Endpoint("POST", "/api/v1/campaigns")
LIST_CAMPAIGNS = Endpoint("GET", "/api/v1/campaigns")
LIST_INSTANCES = Endpoint("GET", "/api/v1/instances")
INSTANCE_HEALTH = Endpoint("GET", "/api/v1/instances/{id}/health")
GET_MESSAGE = Endpoint("GET", "/api/v1/messages/{id}")
LIST_MESSAGES = Endpoint("GET", "/api/v1/messages")
REGISTER_WEBHOOK = Endpoint("POST", "/api/v1/webhooks")
LIST_WEBHOOKS = Endpoint("GET", "/api/v1/webhooks")
DELETE_WEBHOOK = Endpoint("DELETE", "/api/v1/webhooks/{id}")


def key_fingerprint(api_key: str) -> str:
    """A label that tells keys apart without revealing any of their characters: the key's kind
    and a hash prefix, ``msgf_live_…3f2a9c``."""
    prefix = match.group(0) if (match := _KEY_PREFIX.match(api_key)) else ""
    return f"{prefix}…{fingerprint(api_key)[:6]}"


def read_envelope(
    status: int, body: bytes, *, retry_after: float | None, secrets: Sequence[str] = ()
) -> Any:
    """``data`` of a 2xx ``{data: ...}`` body; otherwise the ``MsgFlashError`` it stands for."""
    try:
        document: Any = from_json(body) if body else None
        parsed = body != b""
    except ValueError:
        document, parsed = None, False
    if 200 <= status < 300:
        if isinstance(document, dict) and "data" in document:
            return document["data"]
        raise MsgFlashError(
            MSGFLASH_BAD_RESPONSE,
            f"MsgFlash answered HTTP {status} without a data envelope: "
            f"{_describe(body, parsed, secrets)}",
            http_status=status,
        )
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        details = error.get("details")
        problems = tuple(map(FieldProblem.from_json, details)) if isinstance(details, list) else ()
        raise MsgFlashError(
            error["code"],
            redact_text(str(error.get("message") or error["code"]), secrets),
            http_status=status,
            details=problems,
            retry_after=retry_after,
        )
    raise MsgFlashError(
        f"HTTP_{status}",
        f"MsgFlash answered HTTP {status} with {_describe(body, parsed, secrets)}",
        http_status=status,
        retry_after=retry_after,
    )


def _describe(body: bytes, parsed: bool, secrets: Sequence[str]) -> str:
    if not body:
        return "an empty body"
    text = redact_text(body[:_SNIPPET_CHARS].decode("utf-8", "replace"), secrets)
    more = "…" if len(body) > _SNIPPET_CHARS else ""
    kind = "an unexpected JSON body" if parsed else "a non-JSON body"
    return f"{kind}: {text!r}{more}"
