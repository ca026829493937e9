"""Embedded state store (``sqlite:///PATH``): one connection in WAL mode, on a writer thread.

Survives restarts of one relay process; not for replicas sharing state (use Redis).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from service.state.sqlite_writer import SqliteWriter
from service.state.store import Claim, ClaimStatus, Correlation, RememberedMessage

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

# One SQL statement and its parameters; an operation runs a few of them in order.
Statement = tuple[str, Any]


class SchemaMismatch(sqlite3.DatabaseError):
    """The file was written by a relay with another schema version."""


class SqliteStateStore:
    """State in one SQLite file, written by one thread that commits queued operations together.

    Each operation is a few constant SQL statements (kept prepared by sqlite3's statement
    cache) and is atomic: it runs inside the writer's ``BEGIN IMMEDIATE`` transaction, which
    holds the write lock before any row is read. Its caller resumes only once that transaction
    has committed, so a claim is on disk before MsgFlash is called, as with one commit each.
    """

    def __init__(
        self,
        writer: SqliteWriter,
        *,
        retention_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._writer = writer
        self._retention = retention_seconds
        self._clock = clock
        self._writes_since_purge = 0

    @classmethod
    async def open(
        cls, path: str, *, retention_seconds: float, clock: Callable[[], float] = time.time
    ) -> SqliteStateStore:
        """Open (creating if needed) the database file; raises ``sqlite3.Error`` on failure."""
        writer = await SqliteWriter.start(partial(_connect, path))
        store = cls(writer, retention_seconds=retention_seconds, clock=clock)
        try:
            await store.purge_expired()
        except BaseException:
            await writer.close()
            raise
        return store

    @property
    def batches_committed(self) -> int:
        """Transactions committed so far: far fewer than operations while they come in bursts."""
        return self._writer.batches_committed

    async def claim(self, key: str, owner: str, lease_seconds: float) -> Claim:
        now = self._clock()
        params = {
            "key": key,
            "owner": owner,
            "now": now,
            "lease_until": now + lease_seconds,
            "expires_at": now + self._retention,
        }
        (outcome, result, claimed_at), *_ = await self._write((_CLAIM, params))
        status = _STATUS[outcome]
        if status is ClaimStatus.DONE:
            return Claim(status, result=bytes(result))
        if status is ClaimStatus.EXPIRED:
            return Claim(status, claimed_at=float(claimed_at))
        return Claim(status)

    async def complete(
        self, key: str, owner: str, result: bytes, *, message: RememberedMessage | None = None
    ) -> None:
        now = self._clock()
        expires_at = now + self._retention
        params = {"key": key, "owner": owner, "now": now, "result": result}
        statements = [(_COMPLETE, {**params, "expires_at": expires_at})]
        if message is not None:
            statements += _remember(key, message, expires_at)
        await self._write(*statements)

    async def release(self, key: str, owner: str) -> None:
        await self._run((_RELEASE, (key, owner)))

    async def forget(self, key: str) -> None:
        """Drop the claim or result and the request -> message record of ``key``."""
        await self._run((_FORGET_CLAIM, (key,)), (_FORGET_REQUEST, (key,)))

    async def correlation_for(self, message_id: str) -> Correlation | None:
        rows = await self._run((_CORRELATION_FOR, (message_id, self._clock())))
        if not rows:
            return None
        request_id, request_source = rows[0]
        return Correlation(request_id=request_id, request_source=request_source)

    async def message_for_request(self, request_key: str) -> str | None:
        rows = await self._run((_MESSAGE_FOR_REQUEST, (request_key, self._clock())))
        return str(rows[0][0]) if rows else None

    async def first_seen(self, key: str, window_seconds: float) -> bool:
        now = self._clock()
        params = {"key": key, "now": now, "expires_at": now + window_seconds}
        return bool(await self._write((_FIRST_SEEN, params)))

    async def forget_seen(self, key: str) -> None:
        await self._run((_FORGET_SEEN, (key,)))

    async def ping(self) -> None:
        """Answered by the writer thread itself, so it proves the thread is alive."""
        await self._run(("SELECT 1", ()))

    async def close(self) -> None:
        """Finish the queued operations, then stop the writer; later calls raise."""
        await self._writer.close()

    async def purge_expired(self) -> int:
        """Delete a bounded batch of expired rows from every table; return how many went."""
        return await self._writer.run(partial(_purge, self._clock()))

    async def _run(self, *statements: Statement) -> list[Any]:
        return await self._writer.run(partial(_execute, statements))

    async def _write(self, *statements: Statement) -> list[Any]:
        rows = await self._run(*statements)
        self._writes_since_purge += 1
        if self._writes_since_purge >= PURGE_EVERY_WRITES:
            self._writes_since_purge = 0
            await self.purge_expired()
        return rows


# --- on the writer thread --------------------------------------------------------------------


def _execute(statements: tuple[Statement, ...], connection: sqlite3.Connection) -> list[Any]:
    """Run ``statements`` in order; the rows of the last one."""
    rows: list[Any] = []
    for sql, params in statements:
        rows = connection.execute(sql, params).fetchall()
    return rows


def _remember(key: str, message: RememberedMessage, expires_at: float) -> list[Statement]:
    """messageId -> correlation and key -> messageId, written with the result."""
    correlation = message.correlation
    row = (message.message_id, correlation.request_id, correlation.request_source, expires_at)
    return [
        (_REMEMBER_CORRELATION, row),
        (_REMEMBER_REQUEST, (key, message.message_id, expires_at)),
    ]


def _purge(now: float, connection: sqlite3.Connection) -> int:
    return sum(connection.execute(purge, (now, PURGE_BATCH)).rowcount for purge in _PURGES)


def _connect(path: str) -> sqlite3.Connection:
    """The connection the writer owns; transactions are its own, hence no isolation level."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        _prepare(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection) -> None:
    """Pragmas for a single-writer service, then the schema (refusing unknown versions)."""
    connection.execute("PRAGMA journal_mode=WAL").fetchall()
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version not in (0, SCHEMA_VERSION):
        raise SchemaMismatch(
            f"schema version {version} is not {SCHEMA_VERSION}: the file belongs to another "
            "relay version; point RELAY_STATE_URL at a new file"
        )
    connection.executescript(_SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
