"""``/api/v1/webhooks``: register, list, delete endpoints (§11). Deliveries: ``delivery``.

MsgFlash requires https; the sandbox also takes plain http to a loopback host (when
``allow_http_webhooks``), so tests can receive on a local port. The secret is shown once.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from aiohttp import web

from service.providers.msgflash.sandbox.context import Sandbox, sandbox_of, state_of
from service.providers.msgflash.sandbox.envelope import (
    ApiError,
    data_response,
    not_found,
    read_object,
)
from service.providers.msgflash.sandbox.envelope import validation_error as invalid
from service.providers.msgflash.sandbox.formats import is_http_url, is_loopback_url
from service.providers.msgflash.sandbox.records import WebhookRecord
from service.providers.msgflash.sandbox.seed import WEBHOOK_EVENTS

MAX_EVENTS = 50


def _url_problem(sandbox: Sandbox, url: object) -> str | None:
    if not isinstance(url, str) or not is_http_url(url):
        return "required: an https URL"
    if url.startswith("https://"):
        return None
    if sandbox.config.allow_http_webhooks and is_loopback_url(url):
        return None
    return "must be an https URL (plain http is only allowed to a loopback host in the sandbox)"


def _problems(sandbox: Sandbox, body: dict[str, Any]) -> list[dict[str, str]]:
    problems = []
    url_problem = _url_problem(sandbox, body.get("url"))
    if url_problem is not None:
        problems.append({"field": "url", "message": url_problem})
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        message = f"required: 1 to {MAX_EVENTS} events among {', '.join(WEBHOOK_EVENTS)}"
        return [*problems, {"field": "events", "message": message}]
    for index, event in enumerate(events):
        if event not in WEBHOOK_EVENTS:
            message = f"unknown event; use one of: {', '.join(WEBHOOK_EVENTS)}"
            problems.append({"field": f"events[{index}]", "message": message})
    return problems


async def create_webhook(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    sandbox.gate.require_feature(state.account, "webhooks", "WEBHOOKS_NOT_AVAILABLE_ON_PLAN")
    body = await read_object(request)
    problems = _problems(sandbox, body)
    if problems:
        raise invalid(problems)
    most = sandbox.gate.limits(state.account).max_webhook_endpoints
    if most is not None and len(state.webhooks) >= most:
        message = f"The plan allows {most} webhook endpoints: delete one or upgrade"
        raise ApiError(403, "MAX_WEBHOOK_ENDPOINTS_REACHED", message)
    now = sandbox.clock()
    hook = WebhookRecord(
        id=str(uuid.uuid4()),
        url=body["url"],
        events=tuple(dict.fromkeys(body["events"])),
        secret=secrets.token_hex(32),
        created_at=now,
        updated_at=now,
    )
    state.webhooks[hook.id] = hook
    return data_response(hook.as_api(with_secret=True), status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    hooks = state_of(request).webhooks.values()
    return data_response([hook.as_api() for hook in hooks])


async def delete_webhook(request: web.Request) -> web.Response:
    state = state_of(request)
    if state.webhooks.pop(request.match_info["id"], None) is None:
        raise not_found("Webhook")
    return data_response({"deleted": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/webhooks", list_webhooks)
    router.add_post("/api/v1/webhooks", create_webhook)
    router.add_delete("/api/v1/webhooks/{id}", delete_webhook)
