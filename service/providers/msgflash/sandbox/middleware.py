"""What every ``/api`` request goes through, in order: the request log, fault injection,
then admission (API key -> its account, per-second limiter per key, the account's monthly API
quota), then its handler, which sees that account's state only.

Faults strike before admission, so an injected failure never counts toward any quota. The
steps hand an ``Answer`` back up, so the log learns the error code and the fault without
any per-request storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from service.providers.msgflash.sandbox.context import ACCOUNT, Sandbox, sandbox_of
from service.providers.msgflash.sandbox.envelope import (
    MESSAGES_429,
    ApiError,
    error_response,
    parse_json,
)
from service.providers.msgflash.sandbox.faults import FaultPlan
from service.providers.msgflash.sandbox.limits import rate_limited

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    response: web.StreamResponse
    code: str | None = None  # the MsgFlash error code when it is an error
    answered: bool = True  # False when the connection was dropped instead


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


@web.middleware
async def serve_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_api_path(request.path):  # admin routes: errors rendered, nothing else
        return (await _rendered(request, lambda: handler(request))).response
    sandbox = sandbox_of(request)
    api_key = request.headers.get("x-api-key")
    entry = sandbox.request_log.open(
        at=sandbox.clock(),
        method=request.method,
        path=request.path,
        query=dict(request.query),
        api_key=api_key,
        account=sandbox.keys.account_of(api_key),
        body=parse_json(await request.read()),
        headers=request.headers,
    )
    plan = sandbox.faults.plan_for(request.path)
    entry.fault = plan.name if plan else None
    answer = await _with_faults(request, handler, sandbox, plan)
    entry.code = answer.code
    entry.status = answer.response.status if answer.answered else None
    return answer.response


async def _with_faults(
    request: web.Request, handler: Handler, sandbox: Sandbox, plan: FaultPlan | None
) -> Answer:
    if plan is not None and plan.latency_seconds:
        await asyncio.sleep(plan.latency_seconds)
    if plan is not None:
        struck = await _strike_before(request, sandbox, plan)
        if struck is not None:
            return struck
    answer = await _rendered(request, lambda: _admitted(request, handler, sandbox))
    if plan is not None and plan.drop_after:  # processed, but the answer is lost
        _drop_connection(request)  # the log still shows what was processed
    return answer


async def _strike_before(request: web.Request, sandbox: Sandbox, plan: FaultPlan) -> Answer | None:
    if plan.error is not None:
        code = plan.error.code
        message = MESSAGES_429.get(code, "Injected fault: the sandbox failed on purpose")
        response = error_response(ApiError(plan.error.status, code, message))
        if plan.error.retry_after is not None:
            response.headers["Retry-After"] = str(plan.error.retry_after)
        return Answer(response, code)
    if plan.hang and not plan.drop:
        # Hang until hang_seconds pass or the sandbox shuts down, then drop the connection.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sandbox.closing.wait(), sandbox.faults.hang_seconds())
    if plan.drop or plan.hang:
        _drop_connection(request)
        return Answer(web.Response(status=500), answered=False)
    return None


def _drop_connection(request: web.Request) -> None:
    """Close the socket without answering; the client sees a server disconnect (the
    response the handler still returns can no longer be written)."""
    if request.transport is not None:
        request.transport.close()


async def _admitted(request: web.Request, handler: Handler, sandbox: Sandbox) -> web.StreamResponse:
    key, account = _authenticate(request, sandbox)
    if sandbox.limiter is not None and not sandbox.limiter.admit(key):
        raise rate_limited()
    state = sandbox.accounts[account]
    sandbox.gate.charge_api_request(state.account)
    request[ACCOUNT] = state
    return await handler(request)


def _authenticate(request: web.Request, sandbox: Sandbox) -> tuple[str, str]:
    """``x-api-key`` must be a configured key; ``Authorization: Bearer`` is not accepted.
    Returns the key and the name of the account it belongs to."""
    given = request.headers.get("x-api-key", "")
    account = sandbox.keys.account_of(given)
    if account is None:
        raise ApiError(401, "UNAUTHORIZED", "Invalid or revoked API key")
    if "X-Team-Id" in request.headers:
        raise ApiError(
            403,
            "TEAM_KEY_REQUIRED",
            "X-Team-Id is only accepted with a team key: remove the header or use a team key",
        )
    return given, account


async def _rendered(
    request: web.Request, call: Callable[[], Awaitable[web.StreamResponse]]
) -> Answer:
    """Run ``call``; turn an ``ApiError`` or aiohttp's routing errors into the envelope."""
    try:
        return Answer(await call())
    except ApiError as exc:
        error = exc
    except web.HTTPNotFound:
        error = ApiError(404, "NOT_FOUND", f"Route {request.method} {request.path} not found")
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        error = ApiError(405, "METHOD_NOT_ALLOWED", f"Use one of: {allowed}")
    except web.HTTPRequestEntityTooLarge:
        error = ApiError(413, "PAYLOAD_TOO_LARGE", "The request body is too large")
    except web.HTTPException:
        raise
    except Exception:
        _log.exception("sandbox_handler_failed", extra={"path": request.path})
        error = ApiError(500, "INTERNAL_ERROR", "The sandbox failed: see its log")
    return Answer(error_response(error), error.code)
