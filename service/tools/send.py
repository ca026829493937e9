"""``msgflash-relay send``: build a command from flags or a file, publish it, print the result.

The result comes back through ``reply_to`` (contract §4), so this is also a live check that a
producer can do request/response over the bus. It needs the broker only (``AMQP_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika

from service.contract.commands import ROUTING_KEYS, CommandType, RawCommand, parse_command
from service.contract.errors import FieldProblem, InvalidCommand
from service.settings import Settings
from service.tools.broker import broker_connection
from service.tools.command_flags import SOURCE, add_arguments, build_command, flag_for

__all__ = ["SOURCE", "add_arguments", "build_command", "publish_and_wait", "run"]

SUCCESS_TYPES = frozenset(
    {
        "msgflash.message.scheduled",
        "msgflash.message.sent",
        "msgflash.campaign.created",
        "tether.campaign.created",
    }
)


async def publish_and_wait(
    settings: Settings, command: Mapping[str, Any], *, timeout: float
) -> dict[str, Any]:
    """Publish ``command`` with a private reply queue and return the first result event."""
    body = json.dumps(command).encode()
    type_ = CommandType(command["type"])
    exchange_name = settings.topology.commands_exchange
    async with broker_connection(settings) as connection:
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
    raise TimeoutError


def run(args: argparse.Namespace, settings: Settings) -> int:
    command = build_command(args)
    try:  # fail early, with the relay's own field errors, instead of waiting for a failed event
        parse_command(
            RawCommand(json.dumps(command).encode(), "application/cloudevents+json"),
            max_bytes=settings.relay_max_body_bytes,
            now=datetime.now(UTC),
        )
    except InvalidCommand as exc:
        for problem in exc.details:
            print(f"msgflash-relay send: {describe(problem, args)}", file=sys.stderr)
        return 2
    try:
        event = asyncio.run(publish_and_wait(settings, command, timeout=args.timeout))
    except TimeoutError:
        print(f"msgflash-relay send: {no_result(settings, args.timeout)}", file=sys.stderr)
        return 1
    print(json.dumps(event, indent=2))
    return 0 if event.get("type") in SUCCESS_TYPES else 1


def describe(problem: FieldProblem, args: argparse.Namespace) -> str:
    """One problem, named by the flag the user typed when there is one."""
    if problem.field in ("data", "body"):
        return problem.message
    return f"{flag_for(problem.field, args) or problem.field}: {problem.message}"


def no_result(settings: Settings, timeout: float) -> str:
    prefix = settings.relay_exchange_prefix
    return (
        f"no result within {timeout:g} s: the command waits in {prefix}'s queues, but no "
        f"relay answered. Is one running (`make run`) with RELAY_EXCHANGE_PREFIX={prefix!r}?"
    )
