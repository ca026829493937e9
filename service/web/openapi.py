"""The OpenAPI 3.1 document of the HTTP routes, rendered from their ``Operation`` declarations
and the pydantic models of the bodies (the command schemas come from ``service.contract.schemas``).

Served at ``GET /openapi.json`` and committed as ``docs/openapi.json``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from aiohttp import web

from service.web import health, ingress, webhooks
from service.web.bodies import JSON
from service.web.operations import SECURITY_SCHEMES, Header, Operation, Reply

OPENAPI_VERSION = "3.1.0"
CONTRACT_VERSION = "1.0.0"  # contract v1
SCHEMA_REF = "#/components/schemas/"
_LOCAL_REF = "#/$defs/"

DOCUMENT = Operation(
    method="GET",
    path="/openapi.json",
    operation_id="openapiDocument",
    tag="operations",
    summary="This document",
    description="The OpenAPI 3.1 document of these routes, generated from the code.",
    replies=(Reply(200, "The OpenAPI document.", None),),
)

OPERATIONS: tuple[Operation, ...] = (
    webhooks.OPERATION,
    webhooks.ACCOUNT_OPERATION,
    ingress.OPERATION,
    DOCUMENT,
)
# Served on the admin port only; the path items say so with a server of their own.
ADMIN_OPERATIONS: tuple[Operation, ...] = (health.LIVENESS, health.READINESS, health.METRICS)
PUBLIC_SERVER = {
    "url": "http://localhost:8080",
    "description": "the public port (RELAY_HTTP_PORT): webhooks and ingress",
}
ADMIN_SERVER = {
    "url": "http://localhost:9090",
    "description": "the admin port (RELAY_ADMIN_PORT): never exposed with the public one",
}

TAGS = (
    {"name": "webhooks", "description": "MsgFlash deliveries, verified and put on the bus."},
    {"name": "ingress", "description": "Commands over HTTP, for producers without AMQP."},
    {
        "name": "operations",
        "description": "This document; health, readiness and metrics on the admin port.",
    },
)

DESCRIPTION = (
    "The HTTP side of msgflash-relay (contract §5): MsgFlash webhooks in and commands in for "
    "producers that do not speak AMQP on the public port; the probes and metrics an "
    "orchestrator needs on the admin port. Every error body is "
    "`{error: {code, message, details?}}`."
)


def render_openapi() -> dict[str, Any]:
    """The whole document, deterministic (the committed copy is compared with it)."""
    components = SchemaComponents()
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS + ADMIN_OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, components
        )
    for operation in ADMIN_OPERATIONS:
        paths[operation.path]["servers"] = [dict(ADMIN_SERVER)]
    schemes = sorted({op.security for op in OPERATIONS if op.security is not None})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "msgflash-relay",
            "version": CONTRACT_VERSION,
            "description": DESCRIPTION,
        },
        "servers": [dict(PUBLIC_SERVER)],
        "tags": list(TAGS),
        "paths": paths,
        "components": {
            "schemas": components.sorted(),
            "securitySchemes": {name: dict(SECURITY_SCHEMES[name]) for name in schemes},
        },
    }


def openapi_routes() -> list[web.RouteDef]:
    body = json.dumps(render_openapi()).encode()

    async def document(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=JSON)

    return [web.route(DOCUMENT.method, DOCUMENT.path, document)]


class SchemaComponents:
    """``components/schemas``: named schemas with their ``$defs`` lifted beside them."""

    def __init__(self) -> None:
        self._schemas: dict[str, Any] = {}

    def add(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        """Add ``schema`` (refs into its own ``$defs``) under ``name``; a ``$ref`` to it."""
        schema = copy.deepcopy(schema)
        for def_name, definition in schema.pop("$defs", {}).items():
            self._put(def_name, _relocated(definition))
        self._put(name, _relocated(schema))
        return {"$ref": SCHEMA_REF + name}

    def sorted(self) -> dict[str, Any]:
        return dict(sorted(self._schemas.items()))

    def _put(self, name: str, schema: Any) -> None:
        if self._schemas.get(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name!r}: rename one model")
        self._schemas[name] = schema


def _relocated(node: Any) -> Any:
    """``#/$defs/X`` refs (and discriminator mappings) rewritten to ``#/components/schemas/X``."""
    if isinstance(node, list):
        return [_relocated(item) for item in node]
    if not isinstance(node, dict):
        return node
    moved = {key: _relocated(value) for key, value in node.items()}
    if isinstance(moved.get("$ref"), str):
        moved["$ref"] = _moved_ref(moved["$ref"])
    discriminator = moved.get("discriminator")
    if isinstance(discriminator, dict) and isinstance(discriminator.get("mapping"), dict):
        mapping = discriminator["mapping"]
        discriminator["mapping"] = {key: _moved_ref(str(ref)) for key, ref in mapping.items()}
    return moved


def _moved_ref(ref: str) -> str:
    if ref.startswith(_LOCAL_REF):
        return SCHEMA_REF + ref.removeprefix(_LOCAL_REF)
    return ref


def _operation(operation: Operation, components: SchemaComponents) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": operation.operation_id,
        "tags": [operation.tag],
        "summary": operation.summary,
        "description": operation.description,
    }
    if operation.headers:
        document["parameters"] = [_parameter(header) for header in operation.headers]
    if operation.body is not None:
        refs = [components.add(name, s) for name, s in operation.body.schemas().items()]
        schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
        document["requestBody"] = {
            "required": True,
            "description": operation.body.description,
            "content": {media: {"schema": schema} for media in operation.body.media_types},
        }
    if operation.security is not None:
        document["security"] = [{operation.security: []}]
    document["responses"] = {
        str(reply.status): _response(reply, components) for reply in operation.replies
    }
    return document


def _parameter(header: Header) -> dict[str, Any]:
    return {
        "name": header.name,
        "in": header.where,
        "required": header.required,
        "description": header.description,
        "schema": _header_schema(header),
    }


def _header_schema(header: Header) -> dict[str, str]:
    if header.pattern is None:
        return {"type": "string"}
    return {"type": "string", "pattern": header.pattern}


def _response(reply: Reply, components: SchemaComponents) -> dict[str, Any]:
    if reply.model is not None:
        named = reply.model.model_json_schema(by_alias=True, mode="serialization")
        schema: dict[str, Any] = components.add(reply.model.__name__, named)
    elif reply.media_type == JSON:
        schema = {"type": "object"}
    else:
        schema = {"type": "string"}
    document: dict[str, Any] = {
        "description": reply.description,
        "content": {reply.media_type: {"schema": schema}},
    }
    if reply.headers:
        document["headers"] = {
            header.name: {
                "description": header.description,
                "required": header.required,
                "schema": _header_schema(header),
            }
            for header in reply.headers
        }
    return document
