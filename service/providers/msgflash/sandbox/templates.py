"""``/api/v1/templates``: create, list (numbered pages), get, update, delete, preview (§7).

``variables`` is always recomputed from the body; a client-sent list is ignored.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from aiohttp import web

from service.providers.msgflash.sandbox.composition import check_template
from service.providers.msgflash.sandbox.context import sandbox_of, state_of
from service.providers.msgflash.sandbox.envelope import (
    ApiError,
    data_response,
    not_found,
    read_object,
)
from service.providers.msgflash.sandbox.envelope import validation_error as invalid
from service.providers.msgflash.sandbox.formats import is_http_url
from service.providers.msgflash.sandbox.pagination import limit_param, page_param
from service.providers.msgflash.sandbox.records import TemplateRecord
from service.providers.msgflash.sandbox.state import SandboxState
from service.providers.msgflash.sandbox.templating import build_context, render, template_variables

TEMPLATE_TYPES = ("text", "image", "video", "audio", "document")


def _field_problems(body: dict[str, Any], *, creating: bool) -> list[dict[str, str]]:
    problems = []
    name = body.get("name")
    if (creating or name is not None) and not (isinstance(name, str) and name.strip()):
        problems.append({"field": "name", "message": "required: a non-empty string"})
    if creating and body.get("type") not in TEMPLATE_TYPES:
        problems.append(
            {"field": "type", "message": f"must be one of: {', '.join(TEMPLATE_TYPES)}"}
        )
    text = body.get("body")
    if text is not None and not isinstance(text, str):
        problems.append({"field": "body", "message": "must be a string"})
    media_url = body.get("mediaUrl")
    if media_url is not None and not is_http_url(media_url):
        problems.append({"field": "mediaUrl", "message": "must be a public http(s) URL"})
    return problems


def _checked(template: TemplateRecord) -> TemplateRecord:
    if template.type == "text" and not (template.body or "").strip():
        raise invalid([{"field": "body", "message": "required for a text template"}])
    check_template(template)
    return replace(template, variables=template_variables(template.body))


def find_template(state: SandboxState, template_id: str) -> TemplateRecord:
    template = state.templates.get(template_id)
    if template is None:
        raise not_found("Template")
    return template


async def create_template(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    body = await read_object(request)
    problems = _field_problems(body, creating=True)
    if problems:
        raise invalid(problems)
    now = sandbox.clock()
    template = _checked(
        TemplateRecord(
            id=str(uuid.uuid4()),
            user_id=state.user.id,
            name=body["name"],
            type=body["type"],
            body=body.get("body"),
            media_url=body.get("mediaUrl"),
            variables=(),
            created_at=now,
            updated_at=now,
        )
    )
    state.templates[template.id] = template
    return data_response(template.as_api(), status=201)


async def list_templates(request: web.Request) -> web.Response:
    page = page_param(request.query)
    limit = limit_param(request.query, default=20)
    newest_first = list(reversed(state_of(request).templates.values()))
    chunk = newest_first[(page - 1) * limit : page * limit]
    return data_response(
        {"templates": [template.as_api() for template in chunk], "total": len(newest_first)}
    )


async def get_template(request: web.Request) -> web.Response:
    template = find_template(state_of(request), request.match_info["id"])
    return data_response(template.as_api())


async def update_template(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    state = state_of(request)
    template = find_template(state, request.match_info["id"])
    body = await read_object(request)
    problems = _field_problems(body, creating=False)
    if body.get("type") not in (None, template.type):
        problems.append({"field": "type", "message": "is immutable: create a new template"})
    if problems:
        raise invalid(problems)
    changes = {
        attribute: body[key]
        for key, attribute in (("name", "name"), ("body", "body"), ("mediaUrl", "media_url"))
        if key in body
    }
    updated = _checked(replace(template, **changes, updated_at=sandbox.clock()))
    state.templates[updated.id] = updated
    return data_response(updated.as_api())


async def delete_template(request: web.Request) -> web.Response:
    state = state_of(request)
    find_template(state, request.match_info["id"])
    del state.templates[request.match_info["id"]]
    return data_response({"deleted": True})


async def preview_template(request: web.Request) -> web.Response:
    """Render without sending: unresolved variables are reported, not an error (200)."""
    state = state_of(request)
    template = find_template(state, request.match_info["id"])
    body = await read_object(request, optional=True)
    instance = state.instances.get(body["instanceId"]) if body.get("instanceId") else None
    contact = state.contacts.get(body["contactId"]) if body.get("contactId") else None
    for key, found in (("instanceId", instance), ("contactId", contact)):
        if body.get(key) is not None and found is None:
            raise ApiError(400, "TEMPLATE_CONTEXT_UNAVAILABLE", f"No such {key}: {body[key]}")
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise invalid([{"field": "variables", "message": "must be an object"}])
    check_template(template)
    context = build_context(
        user=state.user.model_dump(by_alias=True),
        instance_name=instance.name if instance else None,
        contact=contact.as_api() if contact else None,
        variables=variables,
    )
    rendering = render(template.body, context)
    return data_response(
        {
            "rendered": rendering.text,
            "variables": list(rendering.used),
            "missingVariables": list(rendering.missing),
            "valid": not rendering.missing,
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/templates", list_templates)
    router.add_post("/api/v1/templates", create_template)
    router.add_get("/api/v1/templates/{id}", get_template)
    router.add_put("/api/v1/templates/{id}", update_template)
    router.add_delete("/api/v1/templates/{id}", delete_template)
    router.add_post("/api/v1/templates/{id}/preview", preview_template)
