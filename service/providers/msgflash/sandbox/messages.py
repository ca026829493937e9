"""``/api/v1/messages``: send, schedule, get and list (§6).

A request is checked in this order: schema (400), destination (422), referenced records
(404), template (400), plan and account features (403), outbound quota (429). Only an
accepted message counts toward the outbound quota.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from service.providers.msgflash.sandbox.composition import Content, direct_content, template_content
from service.providers.msgflash.sandbox.context import Sandbox, sandbox_of, state_of
from service.providers.msgflash.sandbox.envelope import (
    ApiError,
    data_response,
    not_found,
    read_object,
    validation_error,
)
from service.providers.msgflash.sandbox.formats import parse_instant
from service.providers.msgflash.sandbox.instances import find_instance
from service.providers.msgflash.sandbox.pagination import cursor_page, limit_param
from service.providers.msgflash.sandbox.records import ContactRecord, InstanceRecord, MessageRecord
from service.providers.msgflash.sandbox.safety import message_safety
from service.providers.msgflash.sandbox.state import SandboxState
from service.providers.msgflash.sandbox.templating import build_context
from service.providers.msgflash.sandbox.validation import (
    destination_problem,
    validate_message_request,
)

STATUSES = ("queued", "sent", "delivered", "read", "failed", "received", "cancelled")


async def send_message(request: web.Request) -> web.Response:
    return await _accept(request, schedule=False)


async def schedule_message(request: web.Request) -> web.Response:
    return await _accept(request, schedule=True)


async def _accept(request: web.Request, *, schedule: bool) -> web.Response:
    sandbox = sandbox_of(request)
    body = await read_object(request)
    problems = validate_message_request(body, schedule=schedule)
    if problems:
        raise validation_error(problems)
    destination = destination_problem(body["to"])
    if destination is not None:
        raise ApiError(422, "INVALID_DESTINATION", destination)
    state = state_of(request)
    instance = find_instance(state, body["instanceId"])
    contact = _contact(state, body.get("contactId"))
    content = _content(state, body, instance, contact)
    _check_features(sandbox, state, content, instance)
    sandbox.gate.ensure_outbound_available(state.account)
    scheduled_at = parse_instant(body["scheduledAt"]) if schedule else None
    message = _message(sandbox, state, body, instance, contact, content, scheduled_at)
    state.messages[message.id] = message
    state.account.usage.messages_count += 1
    sandbox.lifecycle.track(state.name, message)
    return data_response(message.as_api(with_safety=True), status=201)


def _contact(state: SandboxState, contact_id: str | None) -> ContactRecord | None:
    if contact_id is None:
        return None
    contact = state.contacts.get(contact_id)
    if contact is None:
        raise not_found("Contact")
    return contact


def _content(
    state: SandboxState,
    body: Mapping[str, Any],
    instance: InstanceRecord,
    contact: ContactRecord | None,
) -> Content:
    template_id = body.get("templateId")
    if template_id is None:
        return direct_content(body, text_key="text")
    template = state.templates.get(template_id)
    if template is None:
        raise not_found("Template")
    context = build_context(
        user=state.user.model_dump(by_alias=True),
        instance_name=instance.name,
        contact=contact.as_api() if contact else None,
        variables=body.get("variables"),
    )
    return template_content(template, context)


def _check_features(
    sandbox: Sandbox, state: SandboxState, content: Content, instance: InstanceRecord
) -> None:
    if content.type == "buttons" and not instance.business:
        raise ApiError(
            403,
            "UNSUPPORTED_FEATURE",
            f"Buttons need a WhatsApp Business account; instance {instance.name!r} is not one",
        )
    if content.type == "voice_note":
        sandbox.gate.require_feature(state.account, "voiceNotes", "FEATURE_NOT_AVAILABLE_ON_PLAN")


def _message(
    sandbox: Sandbox,
    state: SandboxState,
    body: Mapping[str, Any],
    instance: InstanceRecord,
    contact: ContactRecord | None,
    content: Content,
    scheduled_at: datetime | None,
) -> MessageRecord:
    now = sandbox.clock()
    warnings, safety = message_safety(instance.safety_state, instance.safety_score)
    meta = dict(content.meta)
    due_at = sandbox.lifecycle.first_due(
        scheduled_at=scheduled_at.timestamp() if scheduled_at else None
    )
    if scheduled_at is not None:
        meta["scheduledAt"] = body["scheduledAt"]
    return MessageRecord(
        id=str(uuid.uuid4()),
        user_id=state.user.id,
        instance_id=instance.id,
        contact_id=contact.id if contact else None,
        type=content.type,
        to=body["to"],
        body=content.body,
        media_url=content.media_url,
        status="queued",
        due_at=due_at,
        created_at=now,
        updated_at=now,
        meta=meta,
        warnings=tuple(warnings),
        safety=safety,
    )


async def get_message(request: web.Request) -> web.Response:
    message = state_of(request).messages.get(request.match_info["id"])
    if message is None:
        raise not_found("Message")
    return data_response(message.as_api())


async def list_messages(request: web.Request) -> web.Response:
    query = request.query
    limit = limit_param(query, default=50)
    status = query.get("status")
    if status is not None and status not in STATUSES:
        field = {"field": "status", "message": f"must be one of: {', '.join(STATUSES)}"}
        raise validation_error([field])
    instance_id = query.get("instanceId")
    newest_first = [
        message
        for message in reversed(state_of(request).messages.values())
        if (status is None or message.status == status)
        and (instance_id is None or message.instance_id == instance_id)
    ]
    page = cursor_page(
        newest_first,
        cursor=query.get("cursor"),
        limit=limit,
        ident=lambda message: message.id,
        sort_value=lambda message: message.as_api()["createdAt"],
    )
    return data_response(
        {
            "messages": [message.as_api() for message in page.items],
            "nextCursor": page.next_cursor,
            "hasMore": page.has_more,
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v1/messages/send", send_message)
    router.add_post("/api/v1/messages/schedule", schedule_message)
    router.add_get("/api/v1/messages", list_messages)
    router.add_get("/api/v1/messages/{id}", get_message)
