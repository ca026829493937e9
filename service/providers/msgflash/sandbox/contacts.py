"""``/api/v1/contacts``: create, list (the newer, cursor-paginated shape), get, update,
delete, and a contact's groups (§9).

Contacts carry a ``temperature`` (warm, cold, unknown) that campaign audiences count.
A phone number is unique per account (409 CONFLICT), an undocumented but likely rule.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from aiohttp import web

from service.providers.msgflash.sandbox.context import sandbox_of, state_of
from service.providers.msgflash.sandbox.envelope import (
    ApiError,
    data_response,
    not_found,
    read_object,
)
from service.providers.msgflash.sandbox.envelope import validation_error as invalid
from service.providers.msgflash.sandbox.formats import is_e164
from service.providers.msgflash.sandbox.pagination import cursor_page, limit_param
from service.providers.msgflash.sandbox.records import ContactRecord
from service.providers.msgflash.sandbox.state import SandboxState

TEMPERATURES = ("warm", "cold", "unknown")
SORTS = ("createdAt_desc", "name_asc")


def _field_problems(body: dict[str, Any], *, creating: bool) -> list[dict[str, str]]:
    problems = []
    name = body.get("name")
    if (creating or "name" in body) and not (isinstance(name, str) and 0 < len(name) <= 255):
        problems.append({"field": "name", "message": "required: 1 to 255 characters"})
    if (creating or "phone" in body) and not is_e164(body.get("phone")):
        problems.append({"field": "phone", "message": "must be E.164, e.g. +33612345678"})
    tags = body.get("tags")
    if tags is not None and not (
        isinstance(tags, list) and all(isinstance(tag, str) and tag for tag in tags)
    ):
        problems.append({"field": "tags", "message": "must be a list of non-empty strings"})
    meta = body.get("meta")
    if meta is not None and not isinstance(meta, dict):
        problems.append({"field": "meta", "message": "must be an object or null"})
    if body.get("temperature") not in (None, *TEMPERATURES):
        problems.append({"field": "temperature", "message": "must be warm, cold or unknown"})
    return problems


def find_contact(state: SandboxState, contact_id: str) -> ContactRecord:
    contact = state.contacts.get(contact_id)
    if contact is None:
        raise not_found("Contact")
    return contact


def _ensure_phone_free(state: SandboxState, phone: str, *, owner: str | None = None) -> None:
    if any(c.phone == phone and c.id != owner for c in state.contacts.values()):
        raise ApiError(409, "CONFLICT", f"A contact with phone {phone} already exists")


async def create_contact(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    body = await read_object(request)
    problems = _field_problems(body, creating=True)
    if problems:
        raise invalid(problems)
    _ensure_phone_free(state, body["phone"])
    now = sandbox.clock()
    contact = ContactRecord(
        id=str(uuid.uuid4()),
        user_id=state.user.id,
        name=body["name"],
        phone=body["phone"],
        tags=tuple(body.get("tags") or ()),
        meta=body.get("meta"),
        temperature=body.get("temperature") or "unknown",
        created_at=now,
        updated_at=now,
    )
    state.contacts[contact.id] = contact
    return data_response(contact.as_api(), status=201)


async def list_contacts(request: web.Request) -> web.Response:
    query = request.query
    limit = limit_param(query, default=50)
    sort = query.get("sort", "createdAt_desc")
    if sort not in SORTS:
        raise invalid([{"field": "sort", "message": f"must be one of: {', '.join(SORTS)}"}])
    search = query.get("search")
    if search is not None and not 1 <= len(search) <= 100:
        raise invalid([{"field": "search", "message": "must be 1 to 100 characters"}])
    contacts = [
        contact
        for contact in state_of(request).contacts.values()
        if search is None or _matches(contact, search)
    ]
    if sort == "name_asc":
        contacts.sort(key=lambda contact: contact.name.casefold())
    else:
        contacts.reverse()
    page = cursor_page(
        contacts,
        cursor=query.get("cursor"),
        limit=limit,
        ident=lambda contact: contact.id,
        sort_value=lambda c: c.name if sort == "name_asc" else str(c.as_api()["createdAt"]),
    )
    return data_response(
        {
            "contacts": [contact.as_api() for contact in page.items],
            "total": len(contacts),
            "limit": limit,
            "sort": sort,
            "nextCursor": page.next_cursor,
            "hasMore": page.has_more,
        }
    )


def _matches(contact: ContactRecord, search: str) -> bool:
    needle = search.casefold()
    return needle in contact.name.casefold() or needle in contact.phone


async def get_contact(request: web.Request) -> web.Response:
    return data_response(find_contact(state_of(request), request.match_info["id"]).as_api())


async def update_contact(request: web.Request) -> web.Response:
    """PUT: every field optional; ``tags`` and ``meta`` replace what was there."""
    sandbox = sandbox_of(request)
    state = state_of(request)
    contact = find_contact(state, request.match_info["id"])
    body = await read_object(request)
    problems = _field_problems(body, creating=False)
    if problems:
        raise invalid(problems)
    if "phone" in body:
        _ensure_phone_free(state, body["phone"], owner=contact.id)
    changes: dict[str, Any] = {
        key: body[key] for key in ("name", "phone", "meta", "temperature") if key in body
    }
    if "tags" in body:
        changes["tags"] = tuple(body["tags"] or ())
    updated = replace(contact, **changes, updated_at=sandbox.clock())
    state.contacts[updated.id] = updated
    return data_response(updated.as_api())


async def delete_contact(request: web.Request) -> web.Response:
    state = state_of(request)
    contact = find_contact(state, request.match_info["id"])
    state.remove_contact(contact.id)
    return data_response({"deleted": True})


async def contact_groups(request: web.Request) -> web.Response:
    state = state_of(request)
    contact = find_contact(state, request.match_info["id"])
    groups = [
        {"id": group.id, "name": group.name, "color": group.color}
        for group in state.groups.values()
        if contact.id in state.members.get(group.id, {})
    ]
    return data_response({"groups": groups})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/contacts", list_contacts)
    router.add_post("/api/v1/contacts", create_contact)
    # /contacts/groups... must be registered before these: aiohttp matches in order.
    router.add_get("/api/v1/contacts/{id}", get_contact)
    router.add_put("/api/v1/contacts/{id}", update_contact)
    router.add_delete("/api/v1/contacts/{id}", delete_contact)
    router.add_get("/api/v1/contacts/{id}/groups", contact_groups)
