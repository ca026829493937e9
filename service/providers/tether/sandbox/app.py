"""Builds the Tether sandbox as an aiohttp application."""

from __future__ import annotations

from aiohttp import web

from service.providers.tether.sandbox import admin, auth, campaigns
from service.providers.tether.sandbox.config import TetherSandboxConfig
from service.providers.tether.sandbox.context import SANDBOX, TetherSandbox
from service.providers.tether.sandbox.middleware import serve_requests


def create_tether_sandbox_app(config: TetherSandboxConfig | None = None) -> web.Application:
    app = web.Application(middlewares=[serve_requests])
    app[SANDBOX] = TetherSandbox(config or TetherSandboxConfig())
    auth.add_routes(app.router)
    campaigns.add_routes(app.router)
    admin.add_routes(app.router)
    app.on_shutdown.append(_release_late_answers)
    return app


async def _release_late_answers(app: web.Application) -> None:
    app[SANDBOX].closing.set()
