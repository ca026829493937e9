"""``/_sandbox``: what tests drive and inspect (no auth, never logged or faulted)."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from service.providers.tether.sandbox.context import sandbox_of
from service.providers.tether.sandbox.faults import FaultSettings

_SHAPES = ("string", "nested", "flat")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/_sandbox/requests", requests)
    router.add_delete("/_sandbox/requests", clear_requests)
    router.add_get("/_sandbox/faults", get_faults)
    router.add_put("/_sandbox/faults", put_faults)
    router.add_delete("/_sandbox/faults", clear_faults)
    router.add_post("/_sandbox/reset", reset)
    router.add_put("/_sandbox/quota", put_quota)
    router.add_put("/_sandbox/error-shape", put_error_shape)
    router.add_post("/_sandbox/tokens/expire", expire_tokens)
    router.add_get("/_sandbox/campaigns", campaigns)


def _ok(data: Any) -> web.Response:
    return web.json_response({"data": data})


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"code": "invalid_request", "message": message}}, status=400)


async def requests(request: web.Request) -> web.Response:
    """``?path=PREFIX&method=M``: every ``/api`` request, rejected and faulted ones included."""
    prefix, method = request.query.get("path", ""), request.query.get("method")
    entries = [
        e.as_api()
        for e in sandbox_of(request).log
        if e.path.startswith(prefix) and (method is None or e.method == method.upper())
    ]
    return _ok(entries)


async def clear_requests(request: web.Request) -> web.Response:
    sandbox_of(request).log.clear()
    return _ok(None)


async def get_faults(request: web.Request) -> web.Response:
    return _ok(sandbox_of(request).faults.as_api())


async def put_faults(request: web.Request) -> web.Response:
    try:
        settings = FaultSettings.model_validate(await request.json())
    except (ValueError, ValidationError) as exc:
        return _bad(f"invalid faults: {exc}")
    sandbox_of(request).faults.configure(settings)
    return _ok(sandbox_of(request).faults.as_api())


async def clear_faults(request: web.Request) -> web.Response:
    sandbox_of(request).faults.configure(None)
    return _ok(sandbox_of(request).faults.as_api())


async def reset(request: web.Request) -> web.Response:
    sandbox_of(request).reset()
    return _ok(None)


async def put_quota(request: web.Request) -> web.Response:
    """``{"sent": {"YYYY-MM-DD": N}}``: SMS already sent on org-local dates (usage = sent +
    reserved); replaces what was set before."""
    body = await request.json()
    sent = body.get("sent", {}) if isinstance(body, dict) else None
    try:
        parsed = {date.fromisoformat(day): int(count) for day, count in dict(sent or {}).items()}
    except (TypeError, ValueError):
        return _bad('expected {"sent": {"YYYY-MM-DD": count}}')
    sandbox = sandbox_of(request)
    sandbox.sent.clear()
    sandbox.sent.update(parsed)
    return _ok({day.isoformat(): count for day, count in sandbox.sent.items()})


async def put_error_shape(request: web.Request) -> web.Response:
    body = await request.json()
    shape = body.get("shape") if isinstance(body, dict) else None
    if shape not in _SHAPES:
        return _bad(f"shape must be one of {', '.join(_SHAPES)}")
    sandbox_of(request).error_shape = shape
    return _ok({"shape": shape})


async def expire_tokens(request: web.Request) -> web.Response:
    """Every login token issued so far is refused from now on (401), as if it had expired."""
    sandbox = sandbox_of(request)
    sandbox.tokens_valid_from = sandbox.clock()
    return _ok(None)


async def campaigns(request: web.Request) -> web.Response:
    return _ok(list(sandbox_of(request).campaigns.values()))
