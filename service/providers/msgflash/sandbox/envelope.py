"""MsgFlash's envelopes: ``{data: ...}`` on success, ``{error: {code, message, details?}}`` else.

Handlers raise ``ApiError``; one middleware turns it into the error envelope.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

RATE_LIMITED = "API_RATE_LIMIT_EXCEEDED"
API_QUOTA = "MONTHLY_API_REQUEST_QUOTA_EXCEEDED"
OUTBOUND_QUOTA = "MONTHLY_OUTBOUND_QUOTA_EXCEEDED"
MESSAGES_429 = {
    RATE_LIMITED: "Too many API requests",
    API_QUOTA: "Monthly API request quota exceeded: upgrade the plan or wait for next month",
    OUTBOUND_QUOTA: "Monthly outbound quota exceeded: upgrade the plan or wait for next month",
}


class ApiError(Exception):
    """An error answer, as data: HTTP status, MsgFlash code, message, optional details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def as_api(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def validation_error(details: list[dict[str, str]]) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", "Invalid request data", details)


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} not found")


def too_many(code: str) -> ApiError:
    return ApiError(429, code, MESSAGES_429[code])


def data_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response({"data": data}, status=status)


def error_response(error: ApiError) -> web.Response:
    return web.json_response(error.as_api(), status=error.status)


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or None when it is empty or not JSON (for the request log)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def read_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The JSON object a POST/PUT carries; anything else is a VALIDATION_ERROR."""
    raw = await request.read()
    if not raw.strip() and optional:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise validation_error(
            [{"field": "(body)", "message": "the request body must be a JSON object"}]
        )
    return body
