"""JSON Schemas of every command and event, generated from the models that parse and build them.

One source of truth: the OpenAPI and AsyncAPI documents embed these, so a field added to a
model shows up in the docs without a second edit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from service.contract.commands import DATA_MODELS, Command, CommandType
from service.contract.event_data import (
    CampaignCreatedData,
    EventEnvelope,
    FailureData,
    MessageResultData,
    QuotaExhaustedData,
    SafetyWarningData,
    TetherCampaignCreatedData,
    WebhookData,
)
from service.contract.events import (
    UNKNOWN_WEBHOOK,
    WEBHOOK_EVENTS,
    WEBHOOK_TYPE_PREFIX,
    EventType,
)

WEBHOOK_EVENT_KEY = WEBHOOK_TYPE_PREFIX + "<event>"

_EVENT_DATA: Mapping[str, type[BaseModel]] = {
    EventType.MESSAGE_SCHEDULED: MessageResultData,
    EventType.MESSAGE_SENT: MessageResultData,
    EventType.MESSAGE_FAILED: FailureData,
    EventType.CAMPAIGN_CREATED: CampaignCreatedData,
    EventType.CAMPAIGN_FAILED: FailureData,
    EventType.SAFETY_WARNING: SafetyWarningData,
    EventType.QUOTA_EXHAUSTED: QuotaExhaustedData,
    EventType.TETHER_CAMPAIGN_CREATED: TetherCampaignCreatedData,
    EventType.TETHER_CAMPAIGN_FAILED: FailureData,
    WEBHOOK_EVENT_KEY: WebhookData,
}


def command_schemas() -> dict[str, dict[str, Any]]:
    """``{command type: JSON Schema of the whole envelope, with the data that type takes}``."""
    envelope = Command.model_json_schema(by_alias=True)
    return {str(kind): _command_schema(envelope, kind) for kind in CommandType}


def event_schemas() -> dict[str, dict[str, Any]]:
    """``{event type: JSON Schema}``; all webhook events share ``msgflash.webhook.<event>``."""
    return {str(kind): _event_schema(kind, data) for kind, data in _EVENT_DATA.items()}


def _command_schema(envelope: dict[str, Any], kind: CommandType) -> dict[str, Any]:
    schema = copy.deepcopy(envelope)
    data_model = DATA_MODELS[kind]
    schema["title"] = f"{kind} command"
    schema["properties"]["type"] = {"const": str(kind), "title": "Type", "type": "string"}
    schema["properties"]["data"] = {"$ref": f"#/$defs/{data_model.__name__}"}
    return _without_unused_defs(schema)


def _event_schema(kind: str, data: type[BaseModel]) -> dict[str, Any]:
    schema = EventEnvelope[data].model_json_schema(by_alias=True, mode="serialization")  # type: ignore[valid-type]
    schema["title"] = f"{kind} event"
    if kind == WEBHOOK_EVENT_KEY:
        names = [*sorted(WEBHOOK_EVENTS), UNKNOWN_WEBHOOK]
        kinds = [WEBHOOK_TYPE_PREFIX + name for name in names]
        schema["properties"]["type"] = {"type": "string", "enum": kinds, "title": "Type"}
    else:
        schema["properties"]["type"] = {"const": kind, "type": "string", "title": "Type"}
    return schema


def _without_unused_defs(schema: dict[str, Any]) -> dict[str, Any]:
    definitions: dict[str, Any] = schema.pop("$defs", {})
    used: set[str] = set()
    pending = list(_refs(schema))
    while pending:
        name = pending.pop()
        if name not in used and name in definitions:
            used.add(name)
            pending.extend(_refs(definitions[name]))
    if used:
        schema["$defs"] = {name: definitions[name] for name in sorted(used)}
    return schema


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
