"""A provider client's pooled HTTP session, made on its first call: aiohttp wants a session made
inside the running loop, and the relay's clients are built before there is one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp


class PooledSession:
    """The session a client calls through: one handed in (its owner closes it), or, for None,
    a pool of ``pool_size`` keep-alive connections made on first use and closed by ``close``."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        *,
        pool_size: int,
        timeout: aiohttp.ClientTimeout | None,
        json_serialize: Callable[[Any], str] = json.dumps,
    ) -> None:
        """``timeout`` None: aiohttp's default."""
        self._session = session
        self._owned = session is None
        self._pool_size = pool_size
        self._timeout = timeout
        self._json_serialize = json_serialize

    def get(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, limit_per_host=self._pool_size, keepalive_timeout=30.0
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, json_serialize=self._json_serialize
            )
        return self._session

    async def close(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
