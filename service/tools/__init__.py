"""Operator and producer tools behind ``msgflash-relay``: send, dead-letter queue, documents."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from service.settings import Settings

SettingsLoader = Callable[[], Settings]


def add_subcommands(sub: Any, load_settings: SettingsLoader) -> None:
    """Register the tool subcommands on the CLI's subparsers; ``load_settings`` is the CLI's
    (it configures logging as well), passed in so the tools need not import the CLI. The tools
    talk to the broker only: the loader asks for no MsgFlash credentials."""
    from service.tools import send

    send_parser: argparse.ArgumentParser = sub.add_parser(
        "send", help="publish a command built from flags or a JSON file and print the result event"
    )
    send.add_arguments(send_parser)
    send_parser.set_defaults(func=_with_settings(send.run, load_settings))

    from service.tools import dlq

    dlq_parser: argparse.ArgumentParser = sub.add_parser(
        "dlq", help="list, replay or purge dead-lettered commands"
    )
    dlq.add_arguments(dlq_parser)
    dlq_parser.set_defaults(func=_with_settings(dlq.run, load_settings))

    from service.tools import topology

    topology_parser = sub.add_parser("topology", help="declare the AMQP topology and print it")
    topology_parser.set_defaults(func=_with_settings(topology.run, load_settings))

    for name, what in (("asyncapi", "AsyncAPI"), ("openapi", "OpenAPI")):
        doc = sub.add_parser(name, help=f"print the {what} document generated from the code")
        doc.set_defaults(func=_print_document(name))


def _with_settings(func: Any, load_settings: SettingsLoader) -> Any:
    def call(args: argparse.Namespace) -> int:
        result: int = func(args, load_settings())
        return result

    return call


def _print_document(name: str) -> Any:
    def call(_args: argparse.Namespace) -> int:
        import json

        if name == "asyncapi":
            from service.contract.asyncapi import render_asyncapi

            document = render_asyncapi()
        else:
            from service.web.openapi import render_openapi

            document = render_openapi()
        print(json.dumps(document, indent=2))
        return 0

    return call
