"""``msgflash-relay``: run the service, the sandbox, send commands, manage dead letters."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import structlog

from service.accounts import load_accounts
from service.contract.errors import ConfigError, RelayError
from service.gc_policy import settle_after_startup
from service.logs import configure_logging
from service.settings import Settings, load_settings
from service.tracing.export import tracing_from_environment
from service.tracing.spans import Tracing

log = structlog.get_logger("service.cli")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(sandbox=_sandbox_provider(argv))
    args = parser.parse_args(argv)
    said = f"msgflash-relay {args.command}"
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"{said}: {exc.message}", file=sys.stderr)
        return 2
    except RelayError as exc:
        print(f"{said}: {exc.message}", file=sys.stderr)
        return 1
    except TimeoutError as exc:
        print(f"{said}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in two lines: what is wrong, and where the help is (not the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\nSee `{self.prog} --help`.\n")


def _sandbox_provider(argv: list[str]) -> str | None:
    """Which simulator ``sandbox`` runs (its flags differ), or None for another command."""
    if not argv or argv[0] != "sandbox":
        return None
    if "--provider=tether" in argv:
        return "tether"
    at = argv.index("--provider") if "--provider" in argv else -1
    return "tether" if 0 < at < len(argv) - 1 and argv[at + 1] == "tether" else "msgflash"


def _parser(*, sandbox: str | None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="msgflash-relay",
        description="Relay between a RabbitMQ command bus and the MsgFlash WhatsApp API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the service (consumers + HTTP server)")
    run.add_argument(
        "--demo",
        action="store_true",
        help="once ready, send the demo commands (MsgFlash, then Tether) and print their events",
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

    from service import tools

    tools.add_subcommands(sub, lambda: configured_settings(relay=False))
    return parser


def configured_settings(*, relay: bool = True) -> Settings:
    """The settings, with logging configured from them; ``relay=False`` for the bus tools."""
    settings = load_settings(relay=relay)
    secrets = [settings.api_key, *settings.webhook_secrets, *settings.ingress_tokens]
    if settings.relay_redis_password is not None:
        secrets.append(settings.relay_redis_password.get_secret_value())
    tether = (settings.tether_api_token, settings.tether_password)
    secrets += [secret.get_secret_value() for secret in tether if secret is not None]
    if relay:  # the accounts file's keys and secrets are redacted as the v1 ones are
        secrets += load_accounts(settings, os.environ).secrets()
    configure_logging(
        log_format=settings.relay_log_format, level=settings.relay_log_level, secrets=secrets
    )
    return settings


def _run(args: argparse.Namespace) -> int:
    settings = configured_settings()
    tracing = tracing_from_environment(os.environ)  # the standard OTEL_* variables
    return asyncio.run(_serve(settings, tracing, demo=args.demo))


async def _serve(settings: Settings, tracing: Tracing, *, demo: bool) -> int:
    from service.app import build, run

    relay = build(settings, load_accounts(settings, os.environ), tracing)
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


if __name__ == "__main__":
    raise SystemExit(main())
