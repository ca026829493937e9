"""``msgflash-relay send``: build a command from flags or a file, publish it, print the result.

The result comes back through ``reply_to`` (contract §4), so this is also a live check that a
producer can do request/response over the bus.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aio_pika

from service.contract.commands import ROUTING_KEYS, CommandType, RawCommand, parse_command
from service.contract.errors import ConfigError, InvalidCommand
from service.settings import Settings

SOURCE = "msgflash-relay/cli"
SUCCESS_TYPES = frozenset(
    {
        "msgflash.message.scheduled",
        "msgflash.message.sent",
        "msgflash.campaign.created",
        "tether.campaign.created",
    }
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, help="JSON file: a whole CloudEvent, or its data")
    parser.add_argument(
        "--provider",
        choices=("msgflash", "tether"),
        default="msgflash",
        help="tether: a tether.campaign.create command (--name, --text, --to, --at, --quota)",
    )
    parser.add_argument("--first-name", default="Customer", help="tether: the contact's first name")
    parser.add_argument(
        "--contact-id", action="append", default=[], metavar="ID", help="tether: existing contact"
    )
    parser.add_argument("--quota", choices=("check", "segment", "skip"), help="tether quota policy")
    parser.add_argument("--campaign", action="store_true", help="build a campaign.create command")
    parser.add_argument("--now", action="store_true", help="send now (message.send)")
    parser.add_argument("--to", help="recipient in E.164, e.g. +33612345678")
    parser.add_argument("--at", help="schedule time with offset, e.g. 2026-12-01T08:00:00Z")
    parser.add_argument("--text", help="text message body (campaigns: body)")
    parser.add_argument("--image", metavar="URL", help="image message with this media URL")
    parser.add_argument("--caption", help="caption of an image message")
    parser.add_argument("--template", metavar="ID", help="template mode: the template id")
    parser.add_argument(
        "--var", action="append", default=[], metavar="K=V", help="template variable (repeat)"
    )
    parser.add_argument("--instance", help="instance name or waNumber (resolved by the relay)")
    parser.add_argument("--instance-id", help="instance id")
    parser.add_argument("--name", help="campaign name")
    parser.add_argument("--repeat", choices=("none", "daily", "weekly"), help="campaign repeat")
    parser.add_argument(
        "--recipients",
        default="all",
        help="campaign audience: all | tags:vip,fr | explicit:ID,ID | group:ID",
    )
    parser.add_argument("--id", help="command id (default: a new UUID)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a result")


def build_command(args: argparse.Namespace, *, command_id: str | None = None) -> dict[str, Any]:
    """The CloudEvent the flags describe. Pure; validation is the relay's own parser's job."""
    if args.file is not None:
        document = json.loads(Path(args.file).read_text())
        if not isinstance(document, dict):
            raise ConfigError(f"--file {args.file}: expected a JSON object")
        if "specversion" in document:
            return document
        return _envelope(_type_of(args, document), document, args.id or command_id)
    if args.provider == "tether":
        data = _tether_data(args)
    else:
        data = _campaign_data(args) if args.campaign else _message_data(args)
    return _envelope(_type_of(args, data), data, args.id or command_id)


def _type_of(args: argparse.Namespace, data: Mapping[str, Any]) -> CommandType:
    if args.provider == "tether":
        return CommandType.TETHER_CREATE_CAMPAIGN
    if args.campaign:
        return CommandType.CREATE_CAMPAIGN
    if args.now or "scheduledAt" not in data:
        return CommandType.SEND_MESSAGE
    return CommandType.SCHEDULE_MESSAGE


def _envelope(
    type_: CommandType, data: Mapping[str, Any], command_id: str | None
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": command_id or str(uuid.uuid4()),
        "source": SOURCE,
        "type": type_.value,
        "data": dict(data),
    }


def _instance(args: argparse.Namespace) -> dict[str, Any]:
    if args.instance_id:
        return {"instanceId": args.instance_id}
    if args.instance:
        return {"instance": args.instance}
    return {}


def _content(args: argparse.Namespace, text_key: str) -> dict[str, Any]:
    if args.template:
        variables = dict(_pair(item) for item in args.var)
        return {"template": {"id": args.template, "variables": variables}}
    if args.image:
        image: dict[str, Any] = {"type": "image", "mediaUrl": args.image}
        if args.caption:
            image["caption"] = args.caption
        return {"message": image}
    return {"message": {"type": "text", text_key: args.text if args.text is not None else ""}}


def _message_data(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {**_instance(args), "to": args.to, **_content(args, "text")}
    if args.at and not args.now:
        data["scheduledAt"] = args.at
    return data


def _campaign_data(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {
        **_instance(args),
        "name": args.name,
        "schedule": args.at,
        "recipients": _recipients(args.recipients),
        **_content(args, "text"),
    }
    if args.repeat:
        data["repeat"] = args.repeat
    return data


def _tether_data(args: argparse.Namespace) -> dict[str, Any]:
    """Tether's own names: one new contact from --to, existing ones from --contact-id."""
    data: dict[str, Any] = {"name": args.name, "message": args.text}
    if args.to:
        data["newContacts"] = [{"firstName": args.first_name, "phoneNumber": args.to}]
    if args.contact_id:
        data["selectedExistingContacts"] = [{"_id": cid} for cid in args.contact_id]
    if args.at:
        data["scheduleDate"] = args.at
    if args.quota:
        data["quota"] = args.quota
    return data


def _recipients(spec: str) -> dict[str, Any]:
    kind, _, rest = spec.partition(":")
    values = [v for v in rest.split(",") if v]
    if kind == "group":
        return {"type": "group", "groupId": rest}
    if kind in ("tags", "explicit"):
        return {"type": kind, "value": values}
    return {"type": kind}


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--var {item!r}: expected NAME=VALUE, e.g. --var firstName=Ana")
    return key, value


async def publish_and_wait(
    settings: Settings, command: Mapping[str, Any], *, timeout: float
) -> dict[str, Any]:
    """Publish ``command`` with a private reply queue and return the first result event."""
    body = json.dumps(command).encode()
    type_ = CommandType(command["type"])
    from service.app import topology_for

    exchange_name = topology_for(settings).commands_exchange
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        reply = await channel.declare_queue(exclusive=True, auto_delete=True)
        exchange = await channel.get_exchange(exchange_name, ensure=True)
        await exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/cloudevents+json",
                message_id=str(command["id"]),
                reply_to=reply.name,
                correlation_id=str(command["id"]),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            ROUTING_KEYS[type_],
            mandatory=True,
            timeout=10,
        )
        async with reply.iterator(timeout=timeout) as messages:
            async for message in messages:
                await message.ack()
                event: dict[str, Any] = json.loads(message.body)
                return event
    finally:
        await connection.close()
    raise TimeoutError(f"no result event within {timeout} s: is `msgflash-relay run` up?")


def run(args: argparse.Namespace, settings: Settings) -> int:
    command = build_command(args)
    try:  # fail early, with the relay's own field errors, instead of waiting for a failed event
        parse_command(
            RawCommand(json.dumps(command).encode(), "application/cloudevents+json"),
            max_bytes=settings.relay_max_body_bytes,
        )
    except InvalidCommand as exc:
        print(f"msgflash-relay send: {exc.message}", file=sys.stderr)
        for problem in exc.details:
            print(f"  {problem.field}: {problem.message}", file=sys.stderr)
        return 2
    try:
        event = asyncio.run(publish_and_wait(settings, command, timeout=args.timeout))
    except TimeoutError:
        print(f"msgflash-relay send: no result within {args.timeout} s", file=sys.stderr)
        return 1
    print(json.dumps(event, indent=2))
    return 0 if event.get("type") in SUCCESS_TYPES else 1
