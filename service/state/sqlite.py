"""Embedded state store (``sqlite:///PATH``): one aiosqlite connection in WAL mode.

Survives restarts of one relay process; not for replicas sharing state (use Redis).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite

from service.state.store import Claim, ClaimStatus, Correlation

SCHEMA_VERSION = 1
# Expired rows are deleted every this many writes, at most PURGE_BATCH rows per table at a
# time: the cost stays small and flat, and steady state deletes as fast as rows expire.
PURGE_EVERY_WRITES = 1000
PURGE_BATCH = 5000
# Another process holding the file (an overlapping restart) is waited for, not failed on.
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    lease_until REAL NOT NULL,
    result BLOB,                -- NULL while claimed, the stored outcome once done
    expires_at REAL NOT NULL,
    last_claim TEXT NOT NULL    -- what the latest claim() decided; RETURNING reads it back
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_expiry ON claims (expires_at);
CREATE TABLE IF NOT EXISTS correlations (
    message_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    request_source TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS correlations_expiry ON correlations (expires_at);
CREATE TABLE IF NOT EXISTS requests (
    request_key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_expiry ON requests (expires_at);
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_at);
"""

# The row as it is (NULLs when absent or past retention) decides the outcome; the new row is
# built from that decision and upserted; RETURNING hands the decision back.
_CLAIM = """
INSERT INTO claims (key, owner, claimed_at, lease_until, result, expires_at, last_claim)
SELECT :key,
       CASE WHEN outcome IN ('done', 'busy') THEN held_owner ELSE :owner END,
       COALESCE(held_claimed_at, :now),
       CASE WHEN outcome IN ('done', 'busy') THEN held_lease_until ELSE :lease_until END,
       held_result,
       CASE WHEN outcome IN ('done', 'busy') THEN held_expires_at ELSE :expires_at END,
       outcome
FROM (
    SELECT held.owner AS held_owner, held.claimed_at AS held_claimed_at,
           held.lease_until AS held_lease_until, held.result AS held_result,
           held.expires_at AS held_expires_at,
           CASE
               WHEN held.key IS NULL THEN 'claimed'
               WHEN held.result IS NOT NULL THEN 'done'
               WHEN held.owner = :owner THEN 'claimed'
               WHEN held.lease_until > :now THEN 'busy'
               ELSE 'expired'
           END AS outcome
    FROM (SELECT 1) LEFT JOIN claims AS held ON held.key = :key AND held.expires_at > :now
)
WHERE true
ON CONFLICT (key) DO UPDATE SET
    owner = excluded.owner, claimed_at = excluded.claimed_at,
    lease_until = excluded.lease_until, result = excluded.result,
    expires_at = excluded.expires_at, last_claim = excluded.last_claim
RETURNING last_claim, result, claimed_at
"""

# A live done row keeps its first result: redeliveries must republish one stable outcome.
_COMPLETE = """
INSERT INTO claims (key, owner, claimed_at, lease_until, result, expires_at, last_claim)
VALUES (:key, :owner, :now, :now, :result, :expires_at, 'done')
ON CONFLICT (key) DO UPDATE SET
    owner = excluded.owner, lease_until = excluded.lease_until,
    result = excluded.result, expires_at = excluded.expires_at
WHERE claims.result IS NULL OR claims.expires_at <= :now
"""

_RELEASE = "DELETE FROM claims WHERE key = ? AND owner = ? AND result IS NULL"
_FORGET_CLAIM = "DELETE FROM claims WHERE key = ?"
_FORGET_REQUEST = "DELETE FROM requests WHERE request_key = ?"

_REMEMBER_CORRELATION = """
INSERT INTO correlations (message_id, request_id, request_source, expires_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (message_id) DO UPDATE SET
    request_id = excluded.request_id, request_source = excluded.request_source,
    expires_at = excluded.expires_at
"""

_REMEMBER_REQUEST = """
INSERT INTO requests (request_key, message_id, expires_at) VALUES (?, ?, ?)
ON CONFLICT (request_key) DO UPDATE SET
    message_id = excluded.message_id, expires_at = excluded.expires_at
"""

_CORRELATION_FOR = """
SELECT request_id, request_source FROM correlations WHERE message_id = ? AND expires_at > ?
"""

_MESSAGE_FOR_REQUEST = "SELECT message_id FROM requests WHERE request_key = ? AND expires_at > ?"

# No row comes back when a live entry exists: the update's WHERE leaves it untouched.
_FIRST_SEEN = """
INSERT INTO seen (key, expires_at) VALUES (:key, :expires_at)
ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE seen.expires_at <= :now
RETURNING 1
"""

_FORGET_SEEN = "DELETE FROM seen WHERE key = ?"

_PURGES = tuple(
    f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE expires_at <= ? LIMIT ?)"
    for table, key in (
        ("claims", "key"),
        ("correlations", "message_id"),
        ("requests", "request_key"),
        ("seen", "key"),
    )
)

_STATUS = {status.value: status for status in ClaimStatus}


class SchemaMismatch(sqlite3.DatabaseError):
    """The file was written by a relay with another schema version."""


class SqliteStateStore:
    """State in one SQLite file, one SQL statement (one thread hop) per operation.

    Every write is a single statement in autocommit mode. SQLite takes the write lock when a
    writing statement starts, before it reads the row, so each is an atomic read-decide-write
    just like ``BEGIN IMMEDIATE ... COMMIT``, without an asyncio lock around four thread hops.
    Statements are constant strings, so sqlite3's statement cache keeps them prepared.
    """

    def __init__(
        self,
        connection: aiosqlite.Connection,
        *,
        retention_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = connection
        self._retention = retention_seconds
        self._clock = clock
        self._writes_since_purge = 0

    @classmethod
    async def open(
        cls, path: str, *, retention_seconds: float, clock: Callable[[], float] = time.time
    ) -> SqliteStateStore:
        """Open (creating if needed) the database file; raises ``sqlite3.Error`` on failure."""
        connection = await aiosqlite.connect(path, isolation_level=None)
        store = cls(connection, retention_seconds=retention_seconds, clock=clock)
        try:
            await _prepare(connection)
            await store.purge_expired()
        except BaseException:
            await connection.close()
            raise
        return store

    async def claim(self, key: str, owner: str, lease_seconds: float) -> Claim:
        now = self._clock()
        params = {
            "key": key,
            "owner": owner,
            "now": now,
            "lease_until": now + lease_seconds,
            "expires_at": now + self._retention,
        }
        (outcome, result, claimed_at), *_ = await self._write(_CLAIM, params)
        status = _STATUS[outcome]
        if status is ClaimStatus.DONE:
            return Claim(status, result=bytes(result))
        if status is ClaimStatus.EXPIRED:
            return Claim(status, claimed_at=float(claimed_at))
        return Claim(status)

    async def complete(self, key: str, owner: str, result: bytes) -> None:
        now = self._clock()
        params = {
            "key": key,
            "owner": owner,
            "now": now,
            "result": result,
            "expires_at": now + self._retention,
        }
        await self._write(_COMPLETE, params)

    async def release(self, key: str, owner: str) -> None:
        await self._db.execute_fetchall(_RELEASE, (key, owner))

    async def forget(self, key: str) -> None:
        """Drop the claim or result and the request -> message record of ``key``."""
        await self._db.execute_fetchall(_FORGET_CLAIM, (key,))
        await self._db.execute_fetchall(_FORGET_REQUEST, (key,))

    async def remember_message(
        self, message_id: str, correlation: Correlation, *, request_key: str
    ) -> None:
        expires_at = self._clock() + self._retention
        row = (message_id, correlation.request_id, correlation.request_source, expires_at)
        await self._write(_REMEMBER_CORRELATION, row)
        await self._write(_REMEMBER_REQUEST, (request_key, message_id, expires_at))

    async def correlation_for(self, message_id: str) -> Correlation | None:
        rows = list(await self._db.execute_fetchall(_CORRELATION_FOR, (message_id, self._clock())))
        if not rows:
            return None
        request_id, request_source = rows[0]
        return Correlation(request_id=request_id, request_source=request_source)

    async def message_for_request(self, request_key: str) -> str | None:
        rows = list(
            await self._db.execute_fetchall(_MESSAGE_FOR_REQUEST, (request_key, self._clock()))
        )
        return str(rows[0][0]) if rows else None

    async def first_seen(self, key: str, window_seconds: float) -> bool:
        now = self._clock()
        params = {"key": key, "now": now, "expires_at": now + window_seconds}
        return bool(await self._write(_FIRST_SEEN, params))

    async def forget_seen(self, key: str) -> None:
        await self._db.execute_fetchall(_FORGET_SEEN, (key,))

    async def ping(self) -> None:
        await self._db.execute_fetchall("SELECT 1")

    async def close(self) -> None:
        await self._db.close()

    async def purge_expired(self) -> int:
        """Delete a bounded batch of expired rows from every table; return how many went."""
        now = self._clock()
        deleted = 0
        for purge in _PURGES:
            cursor = await self._db.execute(purge, (now, PURGE_BATCH))
            deleted += cursor.rowcount
            await cursor.close()
        return deleted

    async def _write(self, sql: str, params: Any) -> list[Any]:
        rows = list(await self._db.execute_fetchall(sql, params))
        self._writes_since_purge += 1
        if self._writes_since_purge >= PURGE_EVERY_WRITES:
            self._writes_since_purge = 0
            await self.purge_expired()
        return rows


async def _prepare(connection: aiosqlite.Connection) -> None:
    """Pragmas for a single-writer service, then the schema (refusing unknown versions)."""
    await connection.execute_fetchall("PRAGMA journal_mode=WAL")
    await connection.execute_fetchall("PRAGMA synchronous=NORMAL")
    await connection.execute_fetchall(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    version = _single_int(await connection.execute_fetchall("PRAGMA user_version"))
    if version not in (0, SCHEMA_VERSION):
        raise SchemaMismatch(
            f"schema version {version} is not {SCHEMA_VERSION}: the file belongs to another "
            "relay version; point RELAY_STATE_URL at a new file"
        )
    await connection.executescript(_SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")


def _single_int(rows: Iterable[Any]) -> int:
    return int(next(iter(rows))[0])
