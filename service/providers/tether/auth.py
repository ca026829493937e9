"""The bearer token of one Tether account: kept, renewed before it expires and once on a 401.

A static API token is used as is. A login JWT is renewed when most of its lifetime has passed
(read from its ``exp`` claim; Tether documents no default lifetime), and many commands waiting
for a token share one login. The token never leaves this object except as a header value.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from service.providers.tether.account import TetherCredentials

log = structlog.get_logger("service.providers.tether.auth")

# Renew once this share of a token's lifetime has passed, so no call goes out with a token
# about to expire on the way.
RENEW_AT_SHARE = 0.8
# A JWT without a readable ``exp`` is assumed to live this long (then a 401 renews it anyway).
ASSUMED_LIFETIME_SECONDS = 3600.0

Login = Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class _Held:
    token: str
    renew_at: float


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, unverified: only to know when to renew."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def renew_time(token: str, issued_at: float) -> float:
    expiry = jwt_expiry(token)
    lifetime = (expiry - issued_at) if expiry is not None else ASSUMED_LIFETIME_SECONDS
    return issued_at + max(lifetime, 0.0) * RENEW_AT_SHARE


class TokenKeeper:
    """Hands out the current token; logs in when there is none, it is due, or it was refused."""

    def __init__(
        self,
        credentials: TetherCredentials,
        login: Login,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._login = login
        self._clock = clock
        self._held: _Held | None = None
        self._lock = asyncio.Lock()

    @property
    def renews(self) -> bool:
        """False for a static API token: a 401 then means the token itself is refused."""
        return self._credentials.uses_login

    async def token(self) -> str:
        if self._credentials.api_token is not None:
            return self._credentials.api_token
        held = self._held
        if held is not None and self._clock() < held.renew_at:
            return held.token
        async with self._lock:
            held = self._held
            if held is not None and self._clock() < held.renew_at:
                return held.token  # another waiter logged in meanwhile
            return await self._renew("due" if held else "first")

    async def refused(self, token: str) -> str:
        """Tether answered 401 to ``token``: a fresh one, unless another call already renewed."""
        async with self._lock:
            if self._held is not None and self._held.token != token:
                return self._held.token
            return await self._renew("refused")

    def __repr__(self) -> str:
        return f"TokenKeeper(login={self._credentials.uses_login}, held={self._held is not None})"

    async def _renew(self, reason: str) -> str:
        issued_at = self._clock()
        token = await self._login()
        self._held = _Held(token, renew_time(token, issued_at))
        log.info("tether_logged_in", reason=reason)
        return token
