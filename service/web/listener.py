"""Where an HTTP application listens, and what to tell an operator when it cannot."""

from __future__ import annotations

import errno
from dataclasses import dataclass

from aiohttp import web

from service.web.server import ServerLimits


@dataclass(frozen=True, slots=True)
class Listener:
    """An HTTP application, where it is to listen, and the setting that says so."""

    app: web.Application
    host: str
    port: int
    setting: str  # the variable an operator changes to move it
    limits: ServerLimits | None = None  # None: aiohttp's defaults, no header timeout


def cannot_listen(listener: Listener, exc: OSError) -> str:
    where = f"cannot listen on {listener.host}:{listener.port} ({listener.setting})"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is in use. Is another relay running (a second `make run`)? "
            f"Stop it, or set {listener.setting} to a free port."
        )
    return f"{where}: {exc.strerror or exc}. Check {listener.setting}."
