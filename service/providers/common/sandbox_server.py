"""What both simulators' ``msgflash-relay sandbox`` commands share: the ``--port`` type,
serving until a signal, and one way of saying why they cannot start.

Exit codes follow the CLI's: 0 after SIGINT or SIGTERM, 2 when a flag, the config file or the
address must change (a port already in use included: pick another one).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import signal
import sys
from collections.abc import Callable
from typing import TextIO, TypeVar

from aiohttp import web

from service.contract.errors import ConfigError

SAID = "msgflash-relay sandbox"

Config = TypeVar("Config")


def port_number(raw: str) -> int:
    """argparse type of ``--port``: a TCP port, so a typo is one line, not a traceback."""
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a port: use 0 to 65535 (0 picks a free one)"
        )
    return port


def run_sandbox(
    args: argparse.Namespace,
    configure: Callable[[argparse.Namespace], Config],
    create_app: Callable[[Config], web.Application],
    describe: Callable[[Config, str], str],
) -> int:
    """The config from the flags, then its app on ``--host``/``--port`` until a signal, with
    ``describe(config, url)`` as the banner; a mistake is one line on stderr and exit 2."""
    try:
        config = configure(args)
    except ConfigError as exc:
        print(f"{SAID}: {exc.message}", file=sys.stderr)
        return 2
    banner = functools.partial(describe, config)
    try:
        asyncio.run(serve(create_app(config), banner, args.host, args.port, sys.stdout))
    except OSError as exc:
        print(f"{SAID}: {cannot_listen(args.host, args.port, exc)}", file=sys.stderr)
        return 2
    return 0


async def serve(
    app: web.Application, banner: Callable[[str], str], host: str, port: int, out: TextIO
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; ``banner(url)`` is printed once it listens."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):  # before the banner: it says "ready"
            loop.add_signal_handler(signum, stop.set)
        print(banner(f"http://{bound_host}:{bound_port}"), file=out, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """Why the port cannot be had, and what to do about it."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another sandbox, or the embedded one of "
            "`make run`?): stop it, or pick another port with --port (0 = any free one)"
        )
    return f"cannot listen on {host}:{port} ({exc.strerror or exc}): check --host and --port"
