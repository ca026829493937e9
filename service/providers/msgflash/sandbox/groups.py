"""``/api/v1/contacts/groups``: create, list, get, update, delete, and members (§9).

Member changes always run synchronously; MsgFlash switches to an async job (202) from 100
ids on, which the sandbox does not simulate.
"""

from __future__ import annotations

import re
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
from service.providers.msgflash.sandbox.formats import is_uuid, iso_timestamp
from service.providers.msgflash.sandbox.pagination import cursor_page, limit_param
from service.providers.msgflash.sandbox.records import GroupRecord
from service.providers.msgflash.sandbox.state import SandboxState

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_MEMBER_IDS = 10_000


def _field_problems(body: dict[str, Any], *, creating: bool) -> list[dict[str, str]]:
    problems = []
    name = body.get("name")
    if (creating or "name" in body) and not (isinstance(name, str) and 0 < len(name) <= 100):
        problems.append({"field": "name", "message": "required: 1 to 100 characters"})
    if body.get("description") is not None and not isinstance(body["description"], str):
        problems.append({"field": "description", "message": "must be a string"})
    color = body.get("color")
    if color is not None and not (isinstance(color, str) and _COLOR.match(color)):
        problems.append({"field": "color", "message": "must be a hex color such as #25D366"})
    return problems


def find_group(state: SandboxState, group_id: str) -> GroupRecord:
    group = state.groups.get(group_id)
    if group is None:
        raise not_found("Group")
    return group


def _group_api(state: SandboxState, group: GroupRecord) -> dict[str, Any]:
    return group.as_api(len(state.members.get(group.id, {})))


def _ensure_name_free(state: SandboxState, name: str, *, owner: str | None = None) -> None:
    if any(g.name.casefold() == name.casefold() and g.id != owner for g in state.groups.values()):
        raise ApiError(409, "CONFLICT", f"A group named {name!r} already exists")


async def create_group(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    body = await read_object(request)
    problems = _field_problems(body, creating=True)
    if problems:
        raise invalid(problems)
    _ensure_name_free(state, body["name"])
    most = sandbox.gate.limits(state.account).max_contact_groups
    if most is not None and len(state.groups) >= most:
        message = f"The plan allows {most} contact groups: delete one or upgrade"
        raise ApiError(403, "MAX_CONTACT_GROUPS_REACHED", message)
    now = sandbox.clock()
    group = GroupRecord(
        str(uuid.uuid4()), body["name"], body.get("description"), body.get("color"), now, now
    )
    state.groups[group.id] = group
    state.members[group.id] = {}
    return data_response(_group_api(state, group), status=201)


async def list_groups(request: web.Request) -> web.Response:
    state = state_of(request)
    query = request.query
    limit = limit_param(query, default=50)
    needle = (query.get("search") or "").casefold()
    groups = [
        group
        for group in reversed(state.groups.values())
        if needle in group.name.casefold() or needle in (group.description or "").casefold()
    ]
    page = cursor_page(
        groups,
        cursor=query.get("cursor"),
        limit=limit,
        ident=lambda group: group.id,
        sort_value=lambda group: iso_timestamp(group.created_at),
    )
    return data_response(
        {
            "groups": [_group_api(state, group) for group in page.items],
            "total": len(groups),
            "limit": limit,
            "nextCursor": page.next_cursor,
            "hasMore": page.has_more,
        }
    )


async def get_group(request: web.Request) -> web.Response:
    state = state_of(request)
    return data_response(_group_api(state, find_group(state, request.match_info["groupId"])))


async def update_group(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    group = find_group(state, request.match_info["groupId"])
    body = await read_object(request)
    problems = _field_problems(body, creating=False)
    if problems:
        raise invalid(problems)
    if "name" in body:
        _ensure_name_free(state, body["name"], owner=group.id)
    changes = {key: body[key] for key in ("name", "description", "color") if key in body}
    updated = replace(group, **changes, updated_at=sandbox.clock())
    state.groups[group.id] = updated
    return data_response(_group_api(state, updated))


async def delete_group(request: web.Request) -> web.Response:
    state = state_of(request)
    group = find_group(state, request.match_info["groupId"])
    del state.groups[group.id]
    state.members.pop(group.id, None)
    return data_response({"deleted": True})


async def _member_ids(request: web.Request) -> list[str]:
    body = await read_object(request)
    ids = body.get("contactIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_MEMBER_IDS:
        message = f"required: 1 to {MAX_MEMBER_IDS} contact ids"
        raise invalid([{"field": "contactIds", "message": message}])
    bad = [
        {"field": f"contactIds[{index}]", "message": "must be a contact id (UUID)"}
        for index, value in enumerate(ids)
        if not is_uuid(value)
    ]
    if bad:
        raise invalid(bad)
    return list(dict.fromkeys(ids))


async def add_members(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    group = find_group(state, request.match_info["groupId"])
    ids = await _member_ids(request)
    members = state.members.setdefault(group.id, {})
    known = [contact_id for contact_id in ids if contact_id in state.contacts]
    fresh = [contact_id for contact_id in known if contact_id not in members]
    now = sandbox.clock()
    members.update(dict.fromkeys(fresh, now))
    return data_response(
        {
            "added": len(fresh),
            "alreadyInGroup": len(known) - len(fresh),
            "notFound": len(ids) - len(known),
            "total": len(members),
        }
    )


async def remove_members(request: web.Request) -> web.Response:
    state = state_of(request)
    group = find_group(state, request.match_info["groupId"])
    ids = await _member_ids(request)
    members = state.members.setdefault(group.id, {})
    removed = [contact_id for contact_id in ids if members.pop(contact_id, None) is not None]
    return data_response({"removed": len(removed), "notInGroup": len(ids) - len(removed)})


async def list_members(request: web.Request) -> web.Response:
    state = state_of(request)
    group = find_group(state, request.match_info["groupId"])
    query = request.query
    limit = limit_param(query, default=50)
    needle = (query.get("search") or "").casefold()
    members = [
        (state.contacts[contact_id], added_at)
        for contact_id, added_at in reversed(state.members.get(group.id, {}).items())
        if contact_id in state.contacts
    ]
    members = [
        (c, added) for c, added in members if needle in c.name.casefold() or needle in c.phone
    ]
    page = cursor_page(
        members,
        cursor=query.get("cursor"),
        limit=limit,
        ident=lambda member: member[0].id,
        sort_value=lambda member: iso_timestamp(member[1]),
    )
    contacts = [
        {"id": c.id, "name": c.name, "phone": c.phone, "tags": list(c.tags)}
        | {"addedAt": iso_timestamp(added)}
        for c, added in page.items
    ]
    return data_response(
        {
            "contacts": contacts,
            "limit": limit,
            "total": len(members),
            "nextCursor": page.next_cursor,
            "hasMore": page.has_more,
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/contacts/groups", list_groups)
    router.add_post("/api/v1/contacts/groups", create_group)
    router.add_get("/api/v1/contacts/groups/{groupId}", get_group)
    router.add_put("/api/v1/contacts/groups/{groupId}", update_group)
    router.add_delete("/api/v1/contacts/groups/{groupId}", delete_group)
    router.add_get("/api/v1/contacts/groups/{groupId}/members", list_members)
    router.add_post("/api/v1/contacts/groups/{groupId}/members", add_members)
    router.add_delete("/api/v1/contacts/groups/{groupId}/members", remove_members)
