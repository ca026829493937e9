"""Embedded state store (``sqlite:///PATH``): one file in WAL mode, written on the event loop
in batches (``sqlite_writer``) and checkpointed on a thread (``sqlite_checkpoint``).

Survives restarts of one relay process; not for replicas sharing state (use Redis).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from service.contract.events import Correlation
from service.state.sqlite_checkpoint import Checkpointer
from service.state.sqlite_records import (
    ClaimRequest,
    CompleteRequest,
    RecordRequest,
    run_record_requests,
)
from service.state.sqlite_schema import connect, connect_checkpointer
from service.state.sqlite_writer import BatchRunner, SqliteWriter
from service.state.store import Claim, RememberedMessage

# Expired rows are deleted every this many writes, at most PURGE_BATCH rows per table at a
# time: the cost stays small and flat, and steady state deletes as fast as rows expire.
PURGE_EVERY_WRITES = 1000
PURGE_BATCH = 5000

_RELEASE = "DELETE FROM claims WHERE key = ? AND owner = ? AND result IS NULL"
_FORGET_CLAIM = "DELETE FROM claims WHERE key = ?"

# The first call's time is kept; no row comes back when ``owner`` no longer holds a live claim.
_MARK_CALLED = """
UPDATE claims SET called_at = COALESCE(called_at, :now), expires_at = :expires_at
WHERE key = :key AND owner = :owner AND result IS NULL AND expires_at > :now
RETURNING 1
"""

_RENEW = """
UPDATE claims SET lease_until = :lease_until
WHERE key = :key AND owner = :owner AND result IS NULL AND expires_at > :now
"""
_FORGET_REQUEST = "DELETE FROM requests WHERE request_key = ?"

_CORRELATION_FOR = """
SELECT request_id, request_source, traceparent FROM correlations
WHERE message_id = ? AND expires_at > ?
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

# One SQL statement and its parameters; an operation runs a few of them in order.
Statement = tuple[str, Any]


class SqliteStateStore:
    """State in one SQLite file, written in batches that commit queued operations together.

    Claims and completions are data: the writer serves each run of them queued together with a
    few set-based statements (``sqlite_records``). The other operations are a few constant
    statements each. Everything runs inside the writer's ``BEGIN IMMEDIATE`` transaction, which
    holds the write lock before any row is read. A caller resumes only once that transaction
    has committed, so a claim is in the file before MsgFlash is called, as with one commit each.
    """

    def __init__(
        self,
        path: str,
        *,
        retention_seconds: float,
        clock: Callable[[], float] = time.time,
        saturated: Callable[[], bool] | None = None,
    ) -> None:
        """A store for the file at ``path``; nothing is opened until ``open()``.

        ``saturated``: whether the relay has more work than it keeps up with (the writer then
        waits longer between commits, see ``sqlite_writer``).
        """
        self._path = path
        self._saturated = saturated
        self._writer_or_none: SqliteWriter | None = None
        self._checkpointer: Checkpointer | None = None
        self._clock = clock
        self._retention = retention_seconds
        self._writes_since_purge = 0
        # One object for every request: the writer groups consecutive requests by runner.
        self._run_records: BatchRunner[RecordRequest, Claim | None] = partial(
            run_record_requests, retention_seconds=retention_seconds
        )

    @classmethod
    def over(
        cls,
        writer: SqliteWriter,
        *,
        retention_seconds: float,
        checkpointer: Checkpointer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SqliteStateStore:
        """A store on a writer that is already running (tests pass traced or failing ones)."""
        store = cls("", retention_seconds=retention_seconds, clock=clock)
        store._writer_or_none, store._checkpointer = writer, checkpointer
        return store

    async def open(self) -> None:
        """Open (creating or migrating) the file and purge what expired; raises
        ``sqlite3.Error`` on failure, leaving nothing running."""
        writer = await SqliteWriter.start(partial(connect, self._path), saturated=self._saturated)
        try:
            self._checkpointer = await Checkpointer.start(partial(connect_checkpointer, self._path))
        except BaseException:
            await writer.close()
            raise
        self._writer_or_none = writer
        try:
            await self.purge_expired()
        except BaseException:
            await self.close()
            raise

    @property
    def _writer(self) -> SqliteWriter:
        writer = self._writer_or_none
        if writer is None:
            raise RuntimeError("the SQLite state store is used before open()")
        return writer

    @property
    def batches_committed(self) -> int:
        """Transactions committed so far: far fewer than operations while they come in bursts."""
        return self._writer.batches_committed

    @property
    def commit_window(self) -> float:
        """Seconds between two commits now (see ``sqlite_writer``)."""
        return self._writer.commit_window

    async def claim(
        self, key: str, owner: str, lease_seconds: float, *, uncalled: str | None = None
    ) -> Claim:
        request = ClaimRequest(
            key, owner, now=self._clock(), lease_seconds=lease_seconds, uncalled=uncalled
        )
        claim = await self._record(request)
        assert claim is not None  # a claim is answered with its Claim
        return claim

    async def complete(
        self, key: str, owner: str, result: bytes, *, message: RememberedMessage | None = None
    ) -> None:
        now = self._clock()
        await self._record(CompleteRequest(key, owner, now=now, result=result, message=message))

    async def release(self, key: str, owner: str) -> None:
        await self._run((_RELEASE, (key, owner)))

    async def mark_called(self, key: str, owner: str) -> bool:
        now = self._clock()
        params = {"key": key, "owner": owner, "now": now, "expires_at": now + self._retention}
        return bool(await self._run((_MARK_CALLED, params)))

    async def renew(self, held: Mapping[str, str], lease_seconds: float) -> None:
        """Every held key in one transaction of the writer."""
        if not held:
            return
        now, until = self._clock(), self._clock() + lease_seconds
        renewals = [
            (_RENEW, {"key": key, "owner": owner, "now": now, "lease_until": until})
            for key, owner in held.items()
        ]
        await self._run(*renewals)

    async def forget(self, key: str) -> None:
        """Drop the claim or result and the request -> message record of ``key``."""
        await self._run((_FORGET_CLAIM, (key,)), (_FORGET_REQUEST, (key,)))

    async def correlation_for(self, message_id: str) -> Correlation | None:
        rows = await self._run((_CORRELATION_FOR, (message_id, self._clock())))
        if not rows:
            return None
        request_id, request_source, traceparent = rows[0]
        return Correlation(request_id, request_source, traceparent)

    async def message_for_request(self, request_key: str) -> str | None:
        rows = await self._run((_MESSAGE_FOR_REQUEST, (request_key, self._clock())))
        return str(rows[0][0]) if rows else None

    async def first_seen(self, key: str, window_seconds: float) -> bool:
        now = self._clock()
        params = {"key": key, "now": now, "expires_at": now + window_seconds}
        rows = await self._run((_FIRST_SEEN, params))
        await self._count_write()
        return bool(rows)

    async def forget_seen(self, key: str) -> None:
        await self._run((_FORGET_SEEN, (key,)))

    async def ping(self) -> None:
        """A statement through the writer; raises too while checkpoints fail or have stopped."""
        await self._run(("SELECT 1", ()))
        checkpointer = self._checkpointer
        if checkpointer is None:
            return
        if not checkpointer.alive:
            raise sqlite3.OperationalError("the SQLite checkpoint thread has stopped")
        if checkpointer.failure is not None:
            raise checkpointer.failure

    async def close(self) -> None:
        """Commit the queued operations, checkpoint, close the file; later calls raise."""
        if self._writer_or_none is None:
            return
        try:
            await self._writer.close()
        finally:
            if self._checkpointer is not None:
                await self._checkpointer.close()

    async def purge_expired(self) -> int:
        """Delete a bounded batch of expired rows from every table; return how many went."""
        return await self._writer.run(partial(_purge, self._clock()))

    async def _run(self, *statements: Statement) -> list[Any]:
        return await self._writer.run(partial(_execute, statements))

    async def _record(self, request: RecordRequest) -> Claim | None:
        answer = await self._writer.submit(request, self._run_records)
        await self._count_write()
        return answer

    async def _count_write(self) -> None:
        """Purge once every PURGE_EVERY_WRITES writing requests, however they were batched."""
        self._writes_since_purge += 1
        if self._writes_since_purge >= PURGE_EVERY_WRITES:
            self._writes_since_purge = 0
            await self.purge_expired()


# --- inside the writer's transactions -----------------------------------------------------------


def _execute(statements: tuple[Statement, ...], connection: sqlite3.Connection) -> list[Any]:
    """Run ``statements`` in order; the rows of the last one."""
    rows: list[Any] = []
    for sql, params in statements:
        rows = connection.execute(sql, params).fetchall()
    return rows


def _purge(now: float, connection: sqlite3.Connection) -> int:
    return sum(connection.execute(purge, (now, PURGE_BATCH)).rowcount for purge in _PURGES)
