"""``/api/v1/templates`` (§7): CRUD, placeholder grammar and preview."""

from __future__ import annotations

from typing import Any

import pytest

from service.providers.msgflash.sandbox.seed import (
    CONTACT_ANA,
    INSTANCE_MAIN,
    TEMPLATE_PROMO,
    TEMPLATE_WELCOME,
)
from tests.providers.msgflash.sandbox.conftest import Api

UNKNOWN = "00000000-0000-4000-8000-00000000ffff"


async def _create(api: Api, **fields: Any) -> tuple[int, Any]:
    return await api.post("/api/v1/templates", {"name": "t", "type": "text", **fields})


async def test_a_created_template_lists_its_variables_in_order(api: Api) -> None:
    status, body = await _create(
        api, body="{{ contact.name }} {{custom.a}} {{user.email}} {{custom.a}}", variables=["x"]
    )
    assert status == 201
    assert body["data"]["variables"] == ["contact.name", "custom.a", "user.email"]


@pytest.mark.parametrize(
    "text", ["Hi {{firstName}}", "Hi {{account.id}}", "Hi {{custom.}}", "Hi {{custom.a"]
)
async def test_a_placeholder_outside_the_grammar_is_template_invalid(api: Api, text: str) -> None:
    status, body = await _create(api, body=text)
    assert (status, body["error"]["code"]) == (400, "TEMPLATE_INVALID")


async def test_a_media_template_without_media_is_template_invalid(api: Api) -> None:
    status, body = await _create(api, type="image", body="caption")
    assert (status, body["error"]["code"]) == (400, "TEMPLATE_INVALID")


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"name": ""}, "name"), ({"type": "sticker"}, "type"), ({"body": None}, "body"),
     ({"body": 3}, "body")],
)  # fmt: skip
async def test_template_fields_are_validated(api: Api, fields: dict[str, Any], field: str) -> None:
    status, body = await _create(api, **{"body": "Hi", **fields})
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"
    assert [d["field"] for d in body["error"]["details"]] == [field]


async def test_list_get_update_and_delete(api: Api) -> None:
    listed = await api.ok("GET", "/api/v1/templates?page=1&limit=1")
    assert listed["total"] == 2 and len(listed["templates"]) == 1
    assert (await api.ok("GET", f"/api/v1/templates/{TEMPLATE_WELCOME}"))["name"] == "welcome"
    updated = await api.ok(
        "PUT", f"/api/v1/templates/{TEMPLATE_WELCOME}", {"body": "Bye {{custom.who}}"}
    )
    assert updated["variables"] == ["custom.who"] and updated["type"] == "text"
    assert await api.ok("DELETE", f"/api/v1/templates/{TEMPLATE_WELCOME}") == {"deleted": True}
    status, _ = await api.get(f"/api/v1/templates/{TEMPLATE_WELCOME}")
    assert status == 404


async def test_the_type_of_a_template_is_immutable(api: Api) -> None:
    status, body = await api.put(f"/api/v1/templates/{TEMPLATE_WELCOME}", {"type": "image"})
    assert status == 400 and body["error"]["details"][0]["field"] == "type"


async def test_an_update_cannot_break_the_placeholders(api: Api) -> None:
    status, body = await api.put(f"/api/v1/templates/{TEMPLATE_WELCOME}", {"body": "{{name}}"})
    assert (status, body["error"]["code"]) == (400, "TEMPLATE_INVALID")


async def test_a_preview_renders_with_the_given_context(api: Api) -> None:
    preview = await api.ok(
        "POST",
        f"/api/v1/templates/{TEMPLATE_PROMO}/preview",
        {"instanceId": INSTANCE_MAIN, "contactId": CONTACT_ANA, "variables": {"offer": "-10%"}},
    )
    assert preview == {
        "rendered": "Hi Ana, -10%",
        "variables": ["contact.firstName", "custom.offer"],
        "missingVariables": [],
        "valid": True,
    }


async def test_a_preview_reports_missing_variables_without_failing(api: Api) -> None:
    preview = await api.ok("POST", f"/api/v1/templates/{TEMPLATE_WELCOME}/preview", {})
    assert preview["valid"] is False
    assert preview["missingVariables"] == ["custom.firstName", "instance.name"]
    assert "{{custom.firstName}}" in preview["rendered"]


async def test_a_preview_with_an_unknown_context_is_unavailable(api: Api) -> None:
    status, body = await api.post(
        f"/api/v1/templates/{TEMPLATE_WELCOME}/preview", {"contactId": UNKNOWN}
    )
    assert (status, body["error"]["code"]) == (400, "TEMPLATE_CONTEXT_UNAVAILABLE")


async def test_a_preview_of_an_unknown_template_is_not_found(api: Api) -> None:
    status, _ = await api.post(f"/api/v1/templates/{UNKNOWN}/preview", {})
    assert status == 404
