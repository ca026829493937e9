"""``/api/v1/contacts`` and ``/api/v1/contacts/groups`` (§9)."""

from __future__ import annotations

from typing import Any

import pytest

from service.providers.msgflash.sandbox.seed import (
    CONTACT_ANA,
    CONTACT_BRUNO,
    CONTACT_CHEN,
    GROUP_CUSTOMERS,
)
from tests.providers.msgflash.sandbox.conftest import Api

UNKNOWN = "00000000-0000-4000-8000-00000000ffff"


async def test_a_contact_is_created_with_an_unknown_temperature(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/contacts", {"name": "Dee Kay", "phone": "+4915112345678", "tags": ["de"]}
    )
    assert status == 201
    assert body["data"]["temperature"] == "unknown" and body["data"]["tags"] == ["de"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"name": ""}, "name"), ({"phone": "0612"}, "phone"), ({"tags": "vip"}, "tags"),
     ({"meta": [1]}, "meta"), ({"temperature": "hot"}, "temperature")],
)  # fmt: skip
async def test_contact_fields_are_validated(api: Api, fields: dict[str, Any], field: str) -> None:
    body = {"name": "Dee", "phone": "+4915112345678", **fields}
    status, answer = await api.post("/api/v1/contacts", body)
    assert status == 400 and [d["field"] for d in answer["error"]["details"]] == [field]


async def test_a_phone_number_belongs_to_one_contact(api: Api) -> None:
    status, body = await api.post("/api/v1/contacts", {"name": "Twin", "phone": "+33612345678"})
    assert (status, body["error"]["code"]) == (409, "CONFLICT")


async def test_the_list_is_paginated_and_searchable(api: Api) -> None:
    first = await api.ok("GET", "/api/v1/contacts?limit=2&sort=name_asc")
    assert [c["name"] for c in first["contacts"]] == ["Ana Lima", "Bruno Costa"]
    assert (first["total"], first["limit"], first["sort"], first["hasMore"]) == (
        3, 2, "name_asc", True,
    )  # fmt: skip
    rest = await api.ok(
        "GET", f"/api/v1/contacts?limit=2&sort=name_asc&cursor={first['nextCursor']}"
    )
    assert [c["id"] for c in rest["contacts"]] == [CONTACT_CHEN] and rest["nextCursor"] is None
    found = await api.ok("GET", "/api/v1/contacts?search=costa")
    assert [c["id"] for c in found["contacts"]] == [CONTACT_BRUNO]


async def test_an_update_replaces_tags_and_meta(api: Api) -> None:
    updated = await api.ok(
        "PUT", f"/api/v1/contacts/{CONTACT_ANA}", {"tags": ["x"], "meta": {"city": "Lyon"}}
    )
    assert (updated["tags"], updated["meta"], updated["name"]) == (
        ["x"],
        {"city": "Lyon"},
        "Ana Lima",
    )


async def test_a_deleted_contact_leaves_its_groups(api: Api) -> None:
    assert await api.ok("DELETE", f"/api/v1/contacts/{CONTACT_ANA}") == {"deleted": True}
    assert (await api.get(f"/api/v1/contacts/{CONTACT_ANA}"))[0] == 404
    group = await api.ok("GET", f"/api/v1/contacts/groups/{GROUP_CUSTOMERS}")
    assert group["contactCount"] == 1


async def test_a_contact_lists_its_groups(api: Api) -> None:
    groups = await api.ok("GET", f"/api/v1/contacts/{CONTACT_ANA}/groups")
    assert groups == {"groups": [{"id": GROUP_CUSTOMERS, "name": "customers", "color": None}]}


async def test_groups_are_created_listed_and_deleted(api: Api) -> None:
    status, created = await api.post(
        "/api/v1/contacts/groups", {"name": "leads", "description": "new", "color": "#25D366"}
    )
    assert status == 201 and created["data"]["contactCount"] == 0
    listed = await api.ok("GET", "/api/v1/contacts/groups")
    assert {g["name"] for g in listed["groups"]} == {"customers", "leads"}
    assert set(listed) == {"groups", "total", "limit", "nextCursor", "hasMore"}
    group_id = created["data"]["id"]
    assert await api.ok("DELETE", f"/api/v1/contacts/groups/{group_id}") == {"deleted": True}
    assert (await api.get(f"/api/v1/contacts/groups/{group_id}"))[0] == 404


async def test_a_group_name_is_unique(api: Api) -> None:
    status, body = await api.post("/api/v1/contacts/groups", {"name": "Customers"})
    assert (status, body["error"]["code"]) == (409, "CONFLICT")


async def test_the_plan_bounds_the_number_of_groups(api: Api) -> None:
    await api.ok("PUT", "/_sandbox/limits", {"maxContactGroups": 1})
    status, body = await api.post("/api/v1/contacts/groups", {"name": "more"})
    assert (status, body["error"]["code"]) == (403, "MAX_CONTACT_GROUPS_REACHED")


async def test_members_are_added_listed_and_removed(api: Api) -> None:
    members = f"/api/v1/contacts/groups/{GROUP_CUSTOMERS}/members"
    added = await api.ok("POST", members, {"contactIds": [CONTACT_CHEN, CONTACT_ANA, UNKNOWN]})
    assert added == {"added": 1, "alreadyInGroup": 1, "notFound": 1, "total": 3}
    listed = await api.ok("GET", f"{members}?limit=10")
    assert {c["id"] for c in listed["contacts"]} == {CONTACT_ANA, CONTACT_BRUNO, CONTACT_CHEN}
    assert set(listed["contacts"][0]) == {"id", "name", "phone", "tags", "addedAt"}
    removed = await api.ok("DELETE", members, {"contactIds": [CONTACT_ANA, UNKNOWN]})
    assert removed == {"removed": 1, "notInGroup": 1}


@pytest.mark.parametrize("ids", [[], "x", ["not-a-uuid"]])
async def test_member_ids_are_validated(api: Api, ids: Any) -> None:
    status, body = await api.post(
        f"/api/v1/contacts/groups/{GROUP_CUSTOMERS}/members", {"contactIds": ids}
    )
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"
