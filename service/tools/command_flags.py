"""The flags of ``msgflash-relay send`` and the command they describe; pure, no broker.

The relay's own parser validates the result; ``flag_for`` turns the wire path of each problem
back into the flag the user typed, so ``data.to`` is reported as ``--to``.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service.contract.commands import CommandType
from service.contract.errors import ConfigError

SOURCE = "msgflash-relay/cli"
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, help="JSON file: a whole CloudEvent, or its data")
    parser.add_argument(
        "--account", metavar="NAME", help="the account to send with (default: account default)"
    )
    parser.add_argument(
        "--provider",
        choices=("msgflash", "tether"),
        default="msgflash",
        help="tether: a tether.campaign.create command (--name, --text, --to, --at/--in, --quota)",
    )
    parser.add_argument("--first-name", default="Customer", help="tether: the contact's first name")
    parser.add_argument(
        "--contact-id", action="append", default=[], metavar="ID", help="tether: existing contact"
    )
    parser.add_argument("--quota", choices=("check", "segment", "skip"), help="tether quota policy")
    parser.add_argument("--campaign", action="store_true", help="build a campaign.create command")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--now", action="store_true", help="send now (message.send)")
    when.add_argument("--at", help="schedule time with offset, e.g. 2030-12-01T08:00:00Z")
    when.add_argument(
        "--in", dest="in_", type=duration, metavar="DELAY", help="schedule DELAY from now: 10m, 2h"
    )
    parser.add_argument("--to", help="recipient in E.164, e.g. +33612345678")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--text", help="text message body (campaigns: body)")
    what.add_argument("--image", metavar="URL", help="image message with this media URL")
    what.add_argument("--template", metavar="ID", help="template mode: the template id")
    parser.add_argument("--caption", help="caption of an image message")
    parser.add_argument(
        "--var", action="append", default=[], metavar="K=V", help="template variable (repeat)"
    )
    instance = parser.add_mutually_exclusive_group()
    instance.add_argument("--instance", help="instance name or waNumber (resolved by the relay)")
    instance.add_argument("--instance-id", help="instance id")
    parser.add_argument("--name", help="campaign name")
    parser.add_argument("--repeat", choices=("none", "daily", "weekly"), help="campaign repeat")
    parser.add_argument(
        "--recipients",
        default="all",
        help="campaign audience: all | tags:vip,fr | explicit:ID,ID | group:ID",
    )
    parser.add_argument("--id", help="command id (default: a new UUID)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a result")


def duration(raw: str) -> timedelta:
    """argparse type of ``--in``: a whole number and a unit."""
    match = _DURATION.match(raw)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a delay: use a number and s, m, h or d, e.g. 90s, 10m, 2h, 1d"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def build_command(
    args: argparse.Namespace, *, command_id: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The CloudEvent the flags describe. Validation is the relay's own parser's job.

    ``--account`` sets the CloudEvents extension attribute (contract §7), over a file's own.
    """
    command = _command(args, command_id, now)
    if args.account is not None:
        command["account"] = args.account
    return command


def _command(
    args: argparse.Namespace, command_id: str | None, now: datetime | None
) -> dict[str, Any]:
    if args.file is not None:
        document = read_file(args.file)
        if "specversion" in document:
            return document
        return _envelope(_type_of(args, document), document, args.id or command_id)
    if args.campaign and args.now:
        raise ConfigError("--now does not apply to --campaign: a campaign starts at --at or --in")
    if not (args.text is not None or args.image or args.template):
        raise ConfigError("say what to send: --text TEXT, --image URL or --template ID")
    if args.caption is not None and not args.image:
        raise ConfigError("--caption goes with --image URL: add the image, or drop the caption")
    when = _when(args, now or datetime.now(UTC))
    if args.provider == "tether":
        data = _tether_data(args, when)
    else:
        data = _campaign_data(args, when) if args.campaign else _message_data(args, when)
    return _envelope(_type_of(args, data), data, args.id or command_id)


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--file {path}: cannot read it ({exc})") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--file {path}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"--file {path}: expected a JSON object, a CloudEvent or its data")
    return document


def flag_for(field: str, args: argparse.Namespace) -> str | None:
    """The flag that set the wire field ``field`` (None for a --file or a whole-command rule)."""
    if args.file is not None:
        return None
    for prefix, flag in _FLAGS:
        if field == prefix or field.startswith((prefix + ".", prefix + "[")):
            return "--in" if flag == "--at" and args.in_ is not None else flag
    return None


_FLAGS = (
    ("data.scheduledAt", "--at"),
    ("data.schedule", "--at"),
    ("data.instanceId", "--instance-id"),
    ("data.instance", "--instance"),
    ("data.to", "--to"),
    ("data.message.mediaUrl", "--image"),
    ("data.message.caption", "--caption"),
    ("data.message", "--text"),
    ("data.template.variables", "--var"),
    ("data.template", "--template"),
    ("data.name", "--name"),
    ("data.recipients", "--recipients"),
    ("data.repeat", "--repeat"),
    ("data.scheduleDate", "--at"),
    ("data.newContacts", "--to"),
    ("data.selectedExistingContacts", "--contact-id"),
    ("data.quota", "--quota"),
    ("id", "--id"),
)


def _when(args: argparse.Namespace, now: datetime) -> str | None:
    if args.in_ is not None:
        moment: datetime = now + args.in_
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(args.at) if args.at else None


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


def _content(args: argparse.Namespace) -> dict[str, Any]:
    if args.template:
        variables = dict(_pair(item) for item in args.var)
        return {"template": {"id": args.template, "variables": variables}}
    if args.image:
        image: dict[str, Any] = {"type": "image", "mediaUrl": args.image}
        if args.caption:
            image["caption"] = args.caption
        return {"message": image}
    return {"message": {"type": "text", "text": args.text}}


def _message_data(args: argparse.Namespace, when: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {**_instance(args), **_content(args)}
    if args.to is not None:
        data["to"] = args.to
    if when is not None:
        data["scheduledAt"] = when
    return data


def _campaign_data(args: argparse.Namespace, when: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        **_instance(args),
        "recipients": _recipients(args.recipients),
        **_content(args),
    }
    optional = {"name": args.name, "schedule": when, "repeat": args.repeat}
    data.update({key: value for key, value in optional.items() if value is not None})
    return data


def _tether_data(args: argparse.Namespace, when: str | None) -> dict[str, Any]:
    """Tether's own names: one new contact from --to, existing ones from --contact-id."""
    data: dict[str, Any] = {"name": args.name, "message": args.text}
    if args.to:
        data["newContacts"] = [{"firstName": args.first_name, "phoneNumber": args.to}]
    if args.contact_id:
        data["selectedExistingContacts"] = [{"_id": cid} for cid in args.contact_id]
    if when:
        data["scheduleDate"] = when
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
