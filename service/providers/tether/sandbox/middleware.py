"""What every ``/api`` request goes through: the request log, faults, the Bearer check, its
handler, and errors rendered in the sandbox's configured shape."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from service.providers.tether.sandbox.auth import PUBLIC_PATHS, auth_kind, authenticate
from service.providers.tether.sandbox.context import ORGANIZATION, TetherSandbox, sandbox_of
from service.providers.tether.sandbox.errors import ApiError, error_response
from service.providers.tether.sandbox.faults import FaultPlan

_log = logging.getLogger(__name__)
_REDACTED = "[redacted]"
# The only headers the request log keeps: what a test of trace propagation needs.
TRACE_HEADERS = ("traceparent", "tracestate")


@web.middleware
async def serve_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    sandbox = sandbox_of(request)
    entry = sandbox.open_entry(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        auth=auth_kind(request),
        body=_logged_body(await request.read()),
        headers={name: request.headers[name] for name in TRACE_HEADERS if name in request.headers},
    )
    plan = sandbox.faults.plan_for(request.method, request.path)
    entry.fault = plan.name if plan else None
    if plan is not None and plan.latency_seconds:
        await asyncio.sleep(plan.latency_seconds)
    if plan is not None and plan.error_status is not None:
        code = "rate_limited" if plan.error_status == 429 else "service_unavailable"
        error = ApiError(plan.error_status, code, "Injected fault: the sandbox failed on purpose")
        entry.status, entry.code = error.status, error.code
        return error_response(error, sandbox.error_shape)  # type: ignore[arg-type]
    response, entry.code = await _rendered(request, handler, sandbox)
    organization = request.get(ORGANIZATION)
    entry.organization = organization.config.name if organization is not None else None
    if plan is not None and (plan.drop_after or plan.late_seconds):
        await _lose_or_delay(request, sandbox, plan)
        if plan.drop_after:
            return response
    entry.status = response.status
    return response


async def _lose_or_delay(request: web.Request, sandbox: TetherSandbox, plan: FaultPlan) -> None:
    """Processed already: hold the answer (late), or close without one (drop_after)."""
    if plan.late_seconds:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sandbox.closing.wait(), plan.late_seconds)
    if plan.drop_after and request.transport is not None:
        request.transport.close()


async def _rendered(
    request: web.Request, handler: Handler, sandbox: TetherSandbox
) -> tuple[web.StreamResponse, str | None]:
    shape: Any = sandbox.error_shape
    try:
        if request.path not in PUBLIC_PATHS:
            authenticate(request)
        return await handler(request), None
    except ApiError as exc:
        error = exc
    except web.HTTPNotFound:  # R1: undocumented routes do not exist
        error = ApiError(404, "not_found", f"Route {request.method} {request.path} not found")
    except web.HTTPMethodNotAllowed:
        error = ApiError(404, "not_found", f"Route {request.method} {request.path} not found")
    except web.HTTPException:
        raise
    except Exception:
        _log.exception("tether_sandbox_handler_failed")
        error = ApiError(500, "internal_error", "The sandbox failed: see its log")
    return error_response(error, shape), error.code


def _logged_body(raw: bytes) -> Any:
    import json

    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", "replace")
    if isinstance(body, dict) and "password" in body:
        body["password"] = _REDACTED
    return body
