"""``/_sandbox``: what tests drive and inspect (no auth, never logged or faulted).

A route about one organisation takes ``?organization=NAME``, which may be left out while there
is only one; the request log and the campaign list take it as a filter."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from service.providers.tether.sandbox.context import Organization, sandbox_of
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
    router.add_get("/_sandbox/organizations", organizations)


def _ok(data: Any) -> web.Response:
    return web.json_response({"data": data})


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"code": "invalid_request", "message": message}}, status=400)


async def requests(request: web.Request) -> web.Response:
    """``?path=PREFIX&method=M``: every ``/api`` request, rejected and faulted ones included."""
    prefix, method = request.query.get("path", ""), request.query.get("method")
    organization = request.query.get("organization")
    entries = [
        e.as_api()
        for e in sandbox_of(request).log
        if e.path.startswith(prefix)
        and (method is None or e.method == method.upper())
        and organization in (None, e.organization)
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
    org = _organization(request)
    if org is None:
        return _bad(_ORGANIZATION_HELP.format(known=", ".join(sandbox_of(request).organizations)))
    org.sent.clear()
    org.sent.update(parsed)
    return _ok({day.isoformat(): count for day, count in org.sent.items()})


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
    """Every organisation's campaigns, or ``?organization=NAME``'s."""
    named = request.query.get("organization")
    orgs = sandbox_of(request).organizations
    return _ok(
        [c for o in orgs.values() if named in (None, o.config.name) for c in o.campaigns.values()]
    )


async def organizations(request: web.Request) -> web.Response:
    """Each organisation's name, id, users' emails and number of API tokens (never a token)."""
    return _ok(
        [
            {
                "name": org.config.name,
                "id": org.config.id,
                "emails": [user.email for user in org.config.users],
                "apiTokens": len(org.config.api_tokens),
            }
            for org in sandbox_of(request).organizations.values()
        ]
    )


_ORGANIZATION_HELP = "name the organisation with ?organization=NAME (one of: {known})"


def _organization(request: web.Request) -> Organization | None:
    """The organisation ``?organization=NAME`` names, or the only one; None otherwise."""
    orgs = sandbox_of(request).organizations
    name = request.query.get("organization")
    if name is None and len(orgs) == 1:
        return next(iter(orgs.values()))
    return orgs.get(name or "")
