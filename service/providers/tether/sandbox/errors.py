"""Errors as this sandbox answers them, in the configured one of Tether's three shapes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.providers.tether.sandbox.config import ErrorShape


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, shape: ErrorShape | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.shape = shape  # None: the sandbox's configured shape


def error_body(error: ApiError, shape: ErrorShape) -> dict[str, Any]:
    chosen = error.shape or shape
    if chosen == "string":
        return {"error": error.message}
    if chosen == "nested":
        return {"error": {"code": error.code, "message": error.message}}
    return {"message": error.message, "code": error.code}


def error_response(error: ApiError, shape: ErrorShape) -> web.Response:
    return web.json_response(error_body(error, shape), status=error.status)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "Invalid or expired token", shape="string")
