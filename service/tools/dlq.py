"""``msgflash-relay dlq list|replay|purge``: the operator's view of parked commands."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from service.bus.deadletters import DeadLetterQueue, ParkedCommand
from service.bus.publisher import Publisher
from service.contract.errors import ConfigError
from service.metrics import Metrics
from service.settings import Settings
from service.tools.broker import broker_connection


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="show parked commands: code, message, attempts, age, id"
    )
    listing.add_argument("--limit", type=int, default=100)
    replay = actions.add_parser("replay", help="send parked commands back to msgflash.commands")
    replay.add_argument("--code", help="only commands parked with this error code")
    replay.add_argument("--id", help="only the command with this id")
    replay.add_argument("--all", action="store_true", help="every parked command")
    purge = actions.add_parser("purge", help="delete every parked command")
    purge.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "replay" and not (args.code or args.id or args.all):
        raise ConfigError("dlq replay: say what to replay with --code CODE, --id ID or --all")
    if args.action == "purge" and not args.yes:
        raise ConfigError("dlq purge deletes every parked command: add --yes to confirm")
    action: Callable[[DeadLetterQueue, Any], Awaitable[int]] = {
        "list": _list,
        "replay": _replay,
        "purge": _purge,
    }[args.action]
    return asyncio.run(_with_queue(settings, args, action))


async def _with_queue(
    settings: Settings,
    args: argparse.Namespace,
    action: Callable[[DeadLetterQueue, Any], Awaitable[int]],
) -> int:
    async with broker_connection(settings) as connection:
        publisher = Publisher(settings.topology, Metrics())
        await publisher.attach(connection)
        return await action(DeadLetterQueue(connection, settings.topology), (args, publisher))


async def _list(queue: DeadLetterQueue, context: Any) -> int:
    args, _ = context
    parked = await queue.peek(limit=args.limit)
    print(format_table(parked, now=time.time()))
    return 0


async def _replay(queue: DeadLetterQueue, context: Any) -> int:
    args, publisher = context

    def select(item: ParkedCommand) -> bool:
        return bool(
            args.all or (args.code and item.code == args.code) or (args.id and item.id == args.id)
        )

    replayed = await queue.replay(publisher, select)
    for item in replayed:
        print(f"replayed {item.id} ({item.code}) -> {item.routing_key}")
    print(f"{len(replayed)} command(s) replayed")
    return 0


async def _purge(queue: DeadLetterQueue, _context: Any) -> int:
    print(f"{await queue.purge()} command(s) purged")
    return 0


def format_table(parked: list[ParkedCommand], *, now: float) -> str:
    rows = [("CODE", "ATTEMPTS", "AGE", "ID", "MESSAGE")]
    for item in parked:
        age = item.age_seconds(now)
        rows.append(
            (
                item.code or "-",
                str(item.attempts),
                "-" if age is None else _age(age),
                item.id,
                item.message[:80],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    ]
    lines.append(f"{len(parked)} parked command(s)")
    return "\n".join(lines)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
