"""The shared pooled session: made on a client's first call, not when the client is built,
and closed only by whoever made it."""

from __future__ import annotations

import aiohttp

from service.providers.common.session import PooledSession


async def test_a_session_is_made_on_first_use_once_and_closed_by_close() -> None:
    pooled = PooledSession(None, pool_size=2, timeout=aiohttp.ClientTimeout(total=5))

    session = pooled.get()

    assert pooled.get() is session
    assert session.timeout.total == 5 and session.connector is not None
    assert session.connector.limit == 2 and session.connector.limit_per_host == 2
    await pooled.close()
    assert session.closed


async def test_a_session_handed_in_is_used_and_left_open_for_its_owner() -> None:
    async with aiohttp.ClientSession() as session:
        pooled = PooledSession(session, pool_size=2, timeout=None)

        assert pooled.get() is session
        await pooled.close()
        assert not session.closed
