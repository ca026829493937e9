"""The Tether account of the ``TETHER_*`` settings, and the embedded sandbox when asked for."""

from __future__ import annotations

from aiohttp import web

from service.providers.tether.account import TetherAccount, TetherCredentials
from service.settings import Settings


def tether_account(settings: Settings) -> TetherAccount | None:
    """The one Tether account of the settings; None when Tether is not configured.

    With the embedded sandbox and no credentials of its own, the sandbox's public login is used.
    """
    base_url = settings.tether_url
    secrets = settings.tether_api_token, settings.tether_email, settings.tether_password
    token, email, password = (v.get_secret_value() if v is not None else None for v in secrets)
    if base_url is None:
        return None
    if token is None and (email is None or password is None):
        if not settings.relay_sandbox:
            return None
        from service.providers.tether.sandbox.config import DEFAULT_EMAIL, DEFAULT_PASSWORD

        email, password = DEFAULT_EMAIL, DEFAULT_PASSWORD
    credentials = TetherCredentials(api_token=token, email=email, password=password)
    return TetherAccount("default", base_url, credentials, settings.tether_rate_limit)


def tether_sandbox_app(settings: Settings) -> web.Application | None:
    """RELAY_SANDBOX=1 without a TETHER_BASE_URL: the simulator, to serve in-process."""
    if not settings.relay_sandbox or settings.tether_base_url is not None:
        return None
    # Imported here on purpose: production paths never load the simulator unless asked to.
    from service.providers.tether.sandbox.app import create_tether_sandbox_app

    return create_tether_sandbox_app()
