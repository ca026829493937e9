"""Tether's routes and answers, as pure data and functions (no I/O).

Tether answers errors in three shapes (``{error: "text"}``, ``{error: {code, message}}`` and a
flat ``{message, code}``); ``read_answer`` reads all three into one ``TetherError``. Success
envelopes vary by route, so a 2xx body is returned as parsed JSON for the caller to pick from.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import from_json

from service.contract.errors import TETHER_BAD_RESPONSE, TetherError
from service.logs import redact_text
from service.providers.common.endpoint import Endpoint

_SNIPPET_CHARS = 200


LOGIN = Endpoint("POST", "/api/auth/login")
CREATE_CAMPAIGN = Endpoint("POST", "/api/campaigns")
LIST_CAMPAIGNS = Endpoint("GET", "/api/campaigns")
VALIDATE_DATE = Endpoint("POST", "/api/campaigns/validate-date")
NEXT_AVAILABLE_SLOT = Endpoint("GET", "/api/campaigns/next-available-slot")
AUTO_SEGMENT = Endpoint("POST", "/api/campaigns/auto-segment")


def read_answer(
    status: int, body: bytes, *, retry_after: float | None, secrets: Sequence[str] = ()
) -> Any:
    """The parsed body of a 2xx answer; otherwise the ``TetherError`` it stands for."""
    try:
        document: Any = from_json(body) if body else None
        parsed = body != b""
    except ValueError:
        document, parsed = None, False
    if 200 <= status < 300:
        if isinstance(document, dict | list):
            return document
        raise TetherError(
            TETHER_BAD_RESPONSE,
            f"Tether answered HTTP {status} with {_describe(body, parsed, secrets)}, "
            f"expected a JSON object",
            http_status=status,
        )
    code, message = error_fields(document)
    raise TetherError(
        code or f"HTTP_{status}",
        redact_text(message, secrets)
        if message
        else f"Tether answered HTTP {status} with {_describe(body, parsed, secrets)}",
        http_status=status,
        retry_after=retry_after,
    )


def answer_object(answer: Any, endpoint: Endpoint) -> dict[str, Any]:
    """A route's answer that must be an object (the quota routes' answers)."""
    if isinstance(answer, dict):
        return answer
    raise TetherError(
        TETHER_BAD_RESPONSE, f"Tether answered {endpoint.label} with a list, expected an object"
    )


def created_campaign(answer: Any) -> dict[str, Any]:
    """The campaign object of a create answer: ``{success, message, data: {...}}``."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if isinstance(data, dict) and isinstance(data.get("_id"), str):
        return data
    raise TetherError(
        TETHER_BAD_RESPONSE,
        "Tether answered the campaign create without a campaign `data._id`; look for the "
        "campaign in Tether before replaying the command",
    )


def error_fields(document: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` from any of Tether's three error shapes; Nones when it is none."""
    if not isinstance(document, dict):
        return None, None
    error = document.get("error")
    if isinstance(error, str):  # {"error": "Invalid or expired token"}
        return None, error
    if isinstance(error, dict):  # {"error": {"code": ..., "message": ...}}
        return _text(error.get("code")), _text(error.get("message"))
    return _text(document.get("code")), _text(document.get("message"))  # {message, code}


def read_instant(value: object) -> datetime | None:
    """A date Tether sent (``createdAt``, ``scheduledDate``); None unless ISO 8601 with offset."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _describe(body: bytes, parsed: bool, secrets: Sequence[str]) -> str:
    if not body:
        return "an empty body"
    text = redact_text(body[:_SNIPPET_CHARS].decode("utf-8", "replace"), secrets)
    more = "…" if len(body) > _SNIPPET_CHARS else ""
    kind = "an unexpected JSON body" if parsed else "a non-JSON body"
    return f"{kind}: {text!r}{more}"
