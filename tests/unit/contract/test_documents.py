"""The generated OpenAPI and AsyncAPI documents: committed copies up to date, every route and
every bus name present, and the schemas in them accepting what the relay really sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from hypothesis import given, settings

from service.bus.publisher import Publisher
from service.contract.amqp import Topology
from service.contract.asyncapi import render_asyncapi
from service.contract.commands import ROUTING_KEYS, CommandType, RawCommand, parse_command
from service.contract.errors import ErrorInfo
from service.contract.events import (
    Correlation,
    EventType,
    failure_event,
    message_result_event,
    webhook_event,
)
from service.metrics import Metrics
from service.state.memory import MemoryStateStore
from service.web.app import WebDeps, create_admin_app, create_web_app
from service.web.bodies import ErrorBody, ErrorDetail, Problem
from service.web.openapi import render_openapi
from tests.unit.strategies import valid_commands

DOCS = Path(__file__).resolve().parents[3] / "docs"


def serialised(document: dict[str, Any]) -> str:
    """Exactly what ``msgflash-relay openapi|asyncapi`` prints (``make docs``)."""
    return json.dumps(document, indent=2) + "\n"


@pytest.mark.parametrize(
    ("name", "render"), [("openapi.json", render_openapi), ("asyncapi.json", render_asyncapi)]
)
def test_the_committed_document_is_up_to_date(name: str, render: Any) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == serialised(render()), f"docs/{name} is stale: run `make docs`"


def test_rendering_is_deterministic() -> None:
    assert serialised(render_openapi()) == serialised(render_openapi())
    assert serialised(render_asyncapi()) == serialised(render_asyncapi())


# --- OpenAPI ------------------------------------------------------------------------------
async def no_checks() -> dict[str, bool]:
    return {}


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def public_app() -> web.Application:
    deps = WebDeps(
        metrics=Metrics(),
        publisher=Publisher(Topology(), Metrics()),
        store=MemoryStateStore(retention_seconds=60),
        webhook_secrets=lambda account: (),
        ingress_tokens=(),
        max_body_bytes=1024,
        webhook_dedupe_seconds=0,
        webhook_tolerance_seconds=60,
        body_timeout=1,
    )
    return create_web_app(deps)


def test_the_document_lists_exactly_the_routes_each_port_serves() -> None:
    paths = render_openapi()["paths"]
    admin = {path for path, item in paths.items() if "servers" in item}
    documented = {
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method != "servers"
    }
    served_admin = served_routes(create_admin_app(no_checks, Metrics()))
    assert {(m, p) for m, p in documented if p not in admin} == served_routes(public_app())
    assert {(m, p) for m, p in documented if p in admin} == served_admin
    assert {p for _, p in served_admin} == {"/healthz", "/readyz", "/metrics"}


def test_the_webhook_route_documents_its_signature_header_and_every_answer() -> None:
    operation = render_openapi()["paths"]["/webhooks/msgflash"]["post"]
    [signature] = [p for p in operation["parameters"] if p["name"] == "X-MsgFlash-Signature"]
    assert signature["in"] == "header"
    assert signature["required"] is True
    assert signature["schema"]["pattern"].startswith("^sha256=")
    assert {"200", "400", "401", "413", "503"} <= set(operation["responses"])
    assert "bare hex" in operation["description"]


def test_the_ingress_requires_a_bearer_token() -> None:
    document = render_openapi()
    operation = document["paths"]["/v1/commands"]["post"]
    [requirement] = operation["security"]
    [scheme] = requirement
    assert document["components"]["securitySchemes"][scheme]["scheme"] == "bearer"
    assert {"202", "401", "404", "422", "503"} <= set(operation["responses"])


def validator(document: dict[str, Any], ref: str) -> jsonschema.Validator:
    """Validates against ``ref``, resolving ``#/components/...`` inside ``document``."""
    return jsonschema.Draft202012Validator({"$ref": ref, **_within(document)})


def _within(document: dict[str, Any]) -> dict[str, Any]:
    return {"components": document["components"]}


@settings(max_examples=40)
@given(command=valid_commands())
def test_every_valid_command_matches_the_ingress_body_schema(command: dict[str, Any]) -> None:
    document = render_openapi()
    body = document["paths"]["/v1/commands"]["post"]["requestBody"]
    [schema] = {json.dumps(media["schema"]) for media in body["content"].values()}
    wire = json.loads(json.dumps(command))
    checker = jsonschema.Draft202012Validator({**json.loads(schema), **_within(document)})
    checker.validate(wire)


def test_a_422_body_matches_the_documented_error_schema() -> None:
    body = ErrorBody(
        error=ErrorDetail(
            code="INVALID_EVENT", message="m", details=(Problem(field="data.to", message="x"),)
        )
    )
    wire = json.loads(body.model_dump_json(by_alias=True, exclude_none=True))
    validator(render_openapi(), "#/components/schemas/ErrorBody").validate(wire)


# --- AsyncAPI -----------------------------------------------------------------------------
def test_every_command_routing_key_is_a_channel_on_the_commands_exchange() -> None:
    channels = render_asyncapi(prefix="acme")["channels"]
    for kind in CommandType:
        channel = channels[f"commands.{ROUTING_KEYS[kind]}"]
        assert channel["address"] == ROUTING_KEYS[kind]
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "acme.commands"


def test_every_event_type_is_a_channel_on_the_events_exchange() -> None:
    channels = render_asyncapi(prefix="acme")["channels"]
    addresses = {
        channel["address"]: channel
        for channel in channels.values()
        if channel.get("bindings", {}).get("amqp", {}).get("exchange", {}).get("name")
        == "acme.events"
    }
    for kind in EventType:
        assert kind.removeprefix("msgflash.") in addresses
    assert "webhook.{event}" in addresses
    assert channels["deadLetter"]["address"] == "acme.dead-letter"


def test_every_operation_and_message_reference_resolves() -> None:
    document = render_asyncapi()
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]


@settings(max_examples=40)
@given(command=valid_commands())
def test_every_valid_command_matches_its_asyncapi_payload(command: dict[str, Any]) -> None:
    document = render_asyncapi()
    wire = json.loads(json.dumps(command))
    validator(document, f"#/components/schemas/{command['type']}").validate(wire)


def test_the_events_the_relay_builds_match_their_asyncapi_payloads() -> None:
    document = render_asyncapi()
    raw = json.dumps(
        {
            "specversion": "1.0",
            "id": "c-1",
            "source": "tests",
            "type": "msgflash.message.send",
            "data": {
                "instanceId": "00000000-0000-4000-8000-0000000000a1",
                "to": "+33612345678",
                "message": {"type": "text", "text": "Hi"},
            },
        }
    ).encode()
    command = parse_command(RawCommand(raw), max_bytes=10_000)
    sent = message_result_event(
        command, {"id": "m-1", "status": "queued"}, instance_id="i", attempts=1
    )
    error = ErrorInfo(code="NOT_FOUND", message="gone", http_status=404)
    failed = failure_event(command.identity, error, attempts=2)
    webhook = webhook_event({"event": "message.read", "messageId": "m-1"}, Correlation("c", "s"))
    for event, schema in (
        (sent, "msgflash.message.sent"),
        (failed, "msgflash.message.failed"),
        (webhook, "msgflash.webhook.event"),
    ):
        validator(document, f"#/components/schemas/{schema}").validate(json.loads(event.body))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []
