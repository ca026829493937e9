"""The AsyncAPI 3.0 document of the relay's bus (contract §2-§4), generated, never hand-written.

Channels are routing keys on ``<prefix>.commands`` (what the relay receives) and
``<prefix>.events`` (what it sends), plus the dead-letter queue; payloads are the JSON Schemas
of the models that parse commands and build events (``service.contract.schemas``); names come from
``service.bus.topology``. Printed by ``msgflash-relay asyncapi``; committed as docs/asyncapi.json.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from service.contract.amqp import (
    ATTEMPTS_HEADER,
    CLOUDEVENTS_JSON,
    ERROR_CODE_HEADER,
    ERROR_MESSAGE_HEADER,
    FAILED_AT_HEADER,
    ROUTING_KEY_HEADER,
    Topology,
)
from service.contract.commands import ROUTING_KEYS, CommandType
from service.contract.events import (
    UNKNOWN_WEBHOOK,
    WEBHOOK_EVENTS,
    WEBHOOK_TYPE_PREFIX,
    EventType,
    routing_key_for,
)
from service.contract.schemas import WEBHOOK_EVENT_KEY, command_schemas, event_schemas

ASYNCAPI_VERSION = "3.0.0"
CONTRACT_VERSION = "1.0.0"  # contract v1
AMQP_BINDING_VERSION = "0.3.0"
SCHEMA_REF = "#/components/schemas/"
_LOCAL_REF = "#/$defs/"

# Which events answer a command (and so may go to its reply_to).
RESULT_EVENTS: Mapping[CommandType, tuple[EventType, ...]] = {
    CommandType.SCHEDULE_MESSAGE: (EventType.MESSAGE_SCHEDULED, EventType.MESSAGE_FAILED),
    CommandType.SEND_MESSAGE: (EventType.MESSAGE_SENT, EventType.MESSAGE_FAILED),
    CommandType.CREATE_CAMPAIGN: (EventType.CAMPAIGN_CREATED, EventType.CAMPAIGN_FAILED),
    CommandType.TETHER_CREATE_CAMPAIGN: (
        EventType.TETHER_CAMPAIGN_CREATED,
        EventType.TETHER_CAMPAIGN_FAILED,
    ),
}
_PROVIDER_NAMES: Mapping[CommandType, str] = {
    kind: "Tether" if kind is CommandType.TETHER_CREATE_CAMPAIGN else "MsgFlash"
    for kind in CommandType
}
WEBHOOK_ADDRESS = routing_key_for(WEBHOOK_TYPE_PREFIX) + "{event}"

DESCRIPTION = (
    "The bus side of msgflash-relay. Producers publish CloudEvents 1.0 commands on the "
    "commands exchange; the relay publishes every outcome, and every verified MsgFlash "
    "webhook, on the events exchange (persistent, JSON, publisher confirms, mandatory). "
    "Commands may also be sent in CloudEvents binary mode: body = `data`, attributes in "
    "`cloudEvents_<attr>` / `cloudEvents:<attr>` / `ce-<attr>` / `ce_<attr>` headers, or "
    "the v1 convention (AMQP `message_id` = id, `type` property = type, `app_id` = source). "
    "`(source, id)` is the idempotency key. "
    "Every event carries `data.requestId`/`data.requestSource` of the command it answers "
    "and the command's AMQP `correlation_id`. All names derive from RELAY_EXCHANGE_PREFIX. "
    "Tether commands (`tether.*`) have a quorum queue of their own, so a Tether outage never "
    "holds MsgFlash commands back."
)


def render_asyncapi(prefix: str = "msgflash") -> dict[str, Any]:
    """The whole document for exchanges and queues named with ``prefix``; deterministic."""
    builder = _Document(Topology(prefix=prefix))
    for kind, schema in command_schemas().items():
        builder.add_command(CommandType(kind), schema)
    for kind, schema in event_schemas().items():
        builder.add_event(kind, schema)
    builder.add_reply_channel()
    builder.add_dead_letters()
    return builder.render()


def message_name(kind: str) -> str:
    """A component name for a message type: ``msgflash.webhook.<event>`` -> ``...webhook.event``."""
    return re.sub(r"[^\w.\-]", "", kind)


class _Document:
    def __init__(self, topology: Topology) -> None:
        self._topology = topology
        self._channels: dict[str, Any] = {}
        self._operations: dict[str, Any] = {}
        self._messages: dict[str, Any] = {}
        self._schemas: dict[str, Any] = {}

    def render(self) -> dict[str, Any]:
        return {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {
                "title": "msgflash-relay",
                "version": CONTRACT_VERSION,
                "description": DESCRIPTION,
            },
            "defaultContentType": CLOUDEVENTS_JSON,
            "servers": {
                "broker": {
                    "host": "{host}",
                    "protocol": "amqp",
                    "protocolVersion": "0-9-1",
                    "description": "The RabbitMQ broker named by AMQP_URL.",
                    "variables": {
                        "host": {"default": "localhost:5672", "description": "host:port"}
                    },
                }
            },
            "channels": self._channels,
            "operations": self._operations,
            "components": {
                "messages": dict(sorted(self._messages.items())),
                "schemas": dict(sorted(self._schemas.items())),
            },
        }

    # --- commands (received) --------------------------------------------------------------
    def add_command(self, kind: CommandType, schema: dict[str, Any]) -> None:
        key = ROUTING_KEYS[kind]
        name = self._add_message(kind, schema, correlation="$message.payload#/id")
        queue = self._queue_of(kind)
        channel_id = f"commands.{key}"
        self._channels[channel_id] = {
            "address": key,
            "title": f"{kind} commands",
            "description": (
                f"Publish on exchange `{self._topology.commands_exchange}` with routing key "
                f"`{key}`; the relay consumes them from the quorum queue `{queue}`."
            ),
            "messages": {name: _message_ref(name)},
            "bindings": {"amqp": self._exchange_binding(self._topology.commands_exchange)},
        }
        results = [message_name(event) for event in RESULT_EVENTS[kind]]
        self._operations[f"consume.{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"The relay consumes {kind} commands and calls {_PROVIDER_NAMES[kind]}.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
            "reply": {
                "address": {
                    "description": "The command's AMQP reply_to property, when it has one.",
                    "location": "$message.header#/reply_to",
                },
                "channel": {"$ref": "#/channels/replyTo"},
                "messages": [{"$ref": f"#/channels/replyTo/messages/{r}"} for r in results],
            },
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        }

    def _queue_of(self, kind: CommandType) -> str:
        if kind is CommandType.CREATE_CAMPAIGN:
            return self._topology.campaigns_queue
        if kind is CommandType.TETHER_CREATE_CAMPAIGN:
            return self._topology.tether_queue
        return self._topology.messages_queue

    # --- events (sent) --------------------------------------------------------------------
    def add_event(self, kind: str, schema: dict[str, Any]) -> None:
        webhook = kind == WEBHOOK_EVENT_KEY
        name = self._add_message(kind, schema, correlation="$message.payload#/data/requestId")
        address = WEBHOOK_ADDRESS if webhook else routing_key_for(kind)
        channel_id = "events.webhook" if webhook else f"events.{address}"
        channel: dict[str, Any] = {
            "address": address,
            "title": f"{kind} events",
            "description": f"Published on exchange `{self._topology.events_exchange}`.",
            "messages": {name: _message_ref(name)},
            "bindings": {"amqp": self._exchange_binding(self._topology.events_exchange)},
        }
        if webhook:
            channel["parameters"] = {
                "event": {
                    "description": "The MsgFlash webhook event, lower-cased: one of the events "
                    "MsgFlash documents, or `unknown` for any other name (kept in `data.event`) "
                    "and for a delivery without one.",
                    "enum": [*sorted(WEBHOOK_EVENTS), UNKNOWN_WEBHOOK],
                }
            }
        self._channels[channel_id] = channel
        self._operations[f"publish.{address}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"The relay publishes {kind}.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": True,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }

    def add_reply_channel(self) -> None:
        results = sorted({message_name(e) for events in RESULT_EVENTS.values() for e in events})
        self._channels["replyTo"] = {
            "address": None,
            "title": "reply_to of a command",
            "description": "The queue a command named in its AMQP reply_to property; the "
            "result event is published there too, through the default exchange.",
            "messages": {name: _message_ref(name) for name in results},
        }

    # --- dead letters (sent) --------------------------------------------------------------
    def add_dead_letters(self) -> None:
        queue = self._topology.dead_letter_queue
        self._messages["deadLetteredCommand"] = {
            "name": "deadLetteredCommand",
            "title": "A command that ended without success",
            "description": "The command exactly as it arrived (body and properties, even "
            "when unparseable), with the reason in headers. `msgflash-relay dlq replay` sends "
            "it back to the commands exchange.",
            "headers": _dead_letter_headers(),
            "payload": {"description": "The original body, unchanged."},
        }
        self._channels["deadLetter"] = {
            "address": queue,
            "title": "Dead-lettered commands",
            "description": f"The quorum queue `{queue}`.",
            "messages": {"deadLetteredCommand": _message_ref("deadLetteredCommand")},
            "bindings": {
                "amqp": {
                    "is": "queue",
                    "queue": {
                        "name": queue,
                        "durable": True,
                        "exclusive": False,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        self._operations["deadLetter"] = {
            "action": "send",
            "channel": {"$ref": "#/channels/deadLetter"},
            "summary": "The relay parks a command that ended without success.",
            "messages": [{"$ref": "#/channels/deadLetter/messages/deadLetteredCommand"}],
        }

    # --- parts ----------------------------------------------------------------------------
    def _add_message(self, kind: str, schema: dict[str, Any], *, correlation: str) -> str:
        name = message_name(kind)
        self._add_schema(name, schema)
        self._messages[name] = {
            "name": name,
            "title": str(schema.get("title", kind)),
            "contentType": CLOUDEVENTS_JSON,
            "payload": {"$ref": SCHEMA_REF + name},
            "correlationId": {"location": correlation},
            "bindings": {"amqp": {"messageType": kind, "bindingVersion": AMQP_BINDING_VERSION}},
        }
        return name

    def _add_schema(self, name: str, schema: dict[str, Any]) -> None:
        schema = copy.deepcopy(schema)
        for def_name, definition in schema.pop("$defs", {}).items():
            self._put_schema(def_name, _asyncapi_schema(definition))
        self._put_schema(name, _asyncapi_schema(schema))

    def _put_schema(self, name: str, schema: Any) -> None:
        if self._schemas.get(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name!r}: rename one model")
        self._schemas[name] = schema

    def _exchange_binding(self, exchange: str) -> dict[str, Any]:
        return {
            "is": "routingKey",
            "exchange": {
                "name": exchange,
                "type": "topic",
                "durable": True,
                "autoDelete": False,
                "vhost": "/",
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }


def _message_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{name}"}


def _asyncapi_schema(node: Any) -> Any:
    """A pydantic JSON Schema as an AsyncAPI Schema Object: refs into ``components/schemas``,
    and ``discriminator`` as the property name (AsyncAPI's form, not OpenAPI's object)."""
    if isinstance(node, list):
        return [_asyncapi_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _asyncapi_schema(value) for key, value in node.items()}
    ref = converted.get("$ref")
    if isinstance(ref, str) and ref.startswith(_LOCAL_REF):
        converted["$ref"] = SCHEMA_REF + ref.removeprefix(_LOCAL_REF)
    discriminator = converted.get("discriminator")
    if isinstance(discriminator, dict):
        converted["discriminator"] = discriminator["propertyName"]
    return converted


def _dead_letter_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            ERROR_CODE_HEADER: {"type": "string", "description": "e.g. INVALID_EVENT"},
            ERROR_MESSAGE_HEADER: {"type": "string", "description": "why, at most 1000 chars"},
            ATTEMPTS_HEADER: {"type": "integer", "description": "provider calls made"},
            FAILED_AT_HEADER: {"type": "string", "description": "when (ISO 8601, UTC)"},
            ROUTING_KEY_HEADER: {"type": "string", "description": "the command's routing key"},
        },
        "required": [ERROR_CODE_HEADER, ERROR_MESSAGE_HEADER, ATTEMPTS_HEADER],
    }
