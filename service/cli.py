"""``msgflash-relay``: run the service, the sandbox, send commands, manage dead letters."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence

import structlog

from service.contract.errors import ConfigError, RelayError
from service.gc_policy import settle_after_startup
from service.logs import configure_logging
from service.settings import Settings, load_settings

log = structlog.get_logger("service.cli")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(sandbox=_sandbox_provider(argv))
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"msgflash-relay: {exc.message}", file=sys.stderr)
        return 2
    except (RelayError, TimeoutError) as exc:
        print(f"msgflash-relay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _sandbox_provider(argv: list[str]) -> str | None:
    """Which simulator ``sandbox`` runs (its flags differ), or None for another command."""
    if not argv or argv[0] != "sandbox":
        return None
    if "--provider=tether" in argv:
        return "tether"
    at = argv.index("--provider") if "--provider" in argv else -1
    return "tether" if 0 < at < len(argv) - 1 and argv[at + 1] == "tether" else "msgflash"


def _parser(*, sandbox: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msgflash-relay",
        description="Relay between a RabbitMQ command bus and the MsgFlash WhatsApp API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the service (consumers + HTTP server)")
    run.add_argument(
        "--demo",
        action="store_true",
        help="once ready, send one demo command and print the events it produces",
    )
    run.set_defaults(func=_run)

    simulator = sub.add_parser(
        "sandbox", help="run the MsgFlash (or, with --provider tether, Tether) simulator"
    )
    simulator.add_argument("--provider", choices=("msgflash", "tether"), default="msgflash")
    # Only loaded when asked for: production paths never import the simulators.
    if sandbox == "tether":
        from service.providers.tether.sandbox import server as tether_server

        tether_server.add_arguments(simulator)
        simulator.set_defaults(func=tether_server.run)
    elif sandbox == "msgflash":
        from service.providers.msgflash.sandbox import server as sandbox_server

        sandbox_server.add_arguments(simulator)
        simulator.set_defaults(func=sandbox_server.run)

    topology = sub.add_parser("topology", help="declare the AMQP topology and print it")
    topology.set_defaults(func=_topology)

    from service import tools

    tools.add_subcommands(sub, configured_settings)
    return parser


def configured_settings() -> Settings:
    settings = load_settings()
    secrets = [settings.api_key, *settings.webhook_secrets, *settings.ingress_tokens]
    tether = (settings.tether_api_token, settings.tether_password)
    secrets += [secret.get_secret_value() for secret in tether if secret is not None]
    configure_logging(
        log_format=settings.relay_log_format, level=settings.relay_log_level, secrets=secrets
    )
    return settings


def _run(args: argparse.Namespace) -> int:
    settings = configured_settings()
    return asyncio.run(_serve(settings, demo=args.demo))


async def _serve(settings: Settings, *, demo: bool) -> int:
    from service.app import build, run

    relay = build(settings)
    # Everything is imported and nothing is connected yet: what is frozen stays for good.
    settle_after_startup()
    stop = asyncio.Event()
    _install_signal_handlers(stop.set)
    if not demo:
        return await run(relay, stop)
    from service.tools.demo import run_demo

    return await run(relay, stop, alongside=run_demo)


def _install_signal_handlers(on_first: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT drains; a second one exits at once."""
    loop = asyncio.get_running_loop()
    received = 0

    def handle(signum: int) -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info("signal_received", signal=signal.Signals(signum).name)
            on_first()
        else:
            log.warning("second_signal_exit_now", signal=signal.Signals(signum).name)
            sys.stdout.flush()
            import os

            os._exit(130)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)


def _topology(_args: argparse.Namespace) -> int:
    settings = configured_settings()
    return asyncio.run(_declare(settings))


async def _declare(settings: Settings) -> int:
    import aio_pika

    from service.app import topology_for
    from service.bus.topology import declare_topology

    topology = topology_for(settings)
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=10)
    try:
        await declare_topology(connection, topology)
    finally:
        await connection.close()
    for name in topology.exchanges():
        print(f"exchange  {name}")
    for name in topology.queues():
        print(f"queue     {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
