"""SQLite writes on the event loop, grouped into one transaction per commit window.

Why on the loop and not on a thread: Python's sqlite3 lets the GIL go around every statement
step and must take it back from a busy event loop after, so a writer thread cost more than the
writes themselves (the thread switches and CPU it cost are in benchmarks/README.md). What makes a
commit slow is the fsync, and there is none here: in WAL mode with ``synchronous=NORMAL`` a
commit only appends pages to the WAL in the OS page cache; the fsyncs happen when the WAL is
copied back into the database file, which only ``sqlite_checkpoint`` does, on a thread of its
own. The connection never waits for a lock either (``busy_timeout=0``): a transaction that
finds the file locked (by the checkpointer or another process) is retried a little later.

A caller's await returns only after the transaction that ran its operation has committed.
Operations are grouped: the first one submitted after a commit waits for the rest of the
commit window (none when the previous commit is older), so under load one transaction serves
many commands, and an idle relay commits at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any, NamedTuple, TypeVar

R = TypeVar("R")
T = TypeVar("T")

# Serves a run of consecutive requests in one go, inside the batch's transaction: one answer
# per request, in order. A request that must fail alone raises; the batch is then re-run one
# request at a time, so only the faulty one fails.
BatchRunner = Callable[[sqlite3.Connection, Sequence[R]], Sequence[T]]

# At most one commit per window: long enough that a busy relay's commands share commits, short
# enough to add little to a command's latency (it waits for two: its claim and its result).
COMMIT_WINDOW_SECONDS = 0.004
# The window while the relay is saturated (as PostgreSQL's commit_delay, which waits only when
# enough other transactions are active): its commands wait on the broker's side anyway, so a
# wider window costs them little and shares each commit, and the wakeups that follow it,
# between many more commands. But not much wider: every command waits for two commits, so with
# the prefetch in flight the window bounds throughput (prefetch / two windows). The windows
# tried and what each cost are in benchmarks/README.md.
SATURATED_COMMIT_WINDOW_SECONDS = 0.010
# Bounds how long one transaction keeps the loop.
MAX_BATCH = 256
# A locked file (a checkpoint restarting the WAL, another process) is tried again this often,
# for this long, before its operations fail.
BUSY_RETRY_SECONDS = 0.005
BUSY_TIMEOUT_SECONDS = 5.0

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class WriterClosed(sqlite3.ProgrammingError):
    """An operation was submitted after ``close()``."""


class _Pending(NamedTuple):
    request: Any
    runner: BatchRunner[Any, Any]
    future: asyncio.Future[Any]
    submitted_at: float


# A future, and the exception or the result to give it.
_Outcome = tuple[asyncio.Future[Any], Exception | None, Any]


class _Busy(Exception):
    """The file was locked: nothing of the batch ran."""


class SqliteWriter:
    """Owns one ``sqlite3`` connection, used on the event loop only, and batches its writes.

    Each batch runs in one ``BEGIN IMMEDIATE ... COMMIT``. When an operation raises, the batch
    is rolled back to its start and re-run one savepoint per operation, so only the faulty one
    fails, and the batch still commits once.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        *,
        commit_window: float = COMMIT_WINDOW_SECONDS,
        saturated_window: float = SATURATED_COMMIT_WINDOW_SECONDS,
        saturated: Callable[[], bool] | None = None,
    ) -> None:
        self._connection = connection
        self._loop = loop
        self._window = commit_window
        self._saturated_window = saturated_window
        self._saturated = saturated
        self._queue: deque[_Pending] = deque()
        self._flush_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_commit = -max(commit_window, saturated_window)
        self._closed = False
        self._drained: asyncio.Future[None] | None = None  # set by close() while it waits
        self.batches_committed = 0  # transactions that committed; read for observability

    @classmethod
    async def start(
        cls,
        connect: Callable[[], sqlite3.Connection],
        *,
        commit_window: float = COMMIT_WINDOW_SECONDS,
        saturated_window: float = SATURATED_COMMIT_WINDOW_SECONDS,
        saturated: Callable[[], bool] | None = None,
    ) -> SqliteWriter:
        """Run ``connect`` (which may create or migrate the file) on a thread; raises as it does.

        ``connect`` must return a connection made with ``check_same_thread=False`` and
        ``isolation_level=None``: it is used on the loop's thread, and transactions are ours.
        ``saturated`` says whether the relay has more work than it keeps up with; the window
        is then ``saturated_window``.
        """
        connection = await asyncio.to_thread(connect)
        loop = asyncio.get_running_loop()
        return cls(
            connection,
            loop,
            commit_window=commit_window,
            saturated_window=saturated_window,
            saturated=saturated,
        )

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """What ``operation`` returned, once the transaction that ran it has committed."""
        return await self.submit(operation, _call_each)

    async def submit(self, request: R, runner: BatchRunner[R, T]) -> T:
        """What ``runner`` answered ``request``, once the transaction that ran it has committed.

        ``runner`` gets, in submission order, every request queued next to this one with the
        same runner (compared with ``==``: pass one function object, not a new partial).
        """
        if self._closed:
            raise WriterClosed("the SQLite state store is closed")
        loop = self._loop
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Pending(request, runner, future, loop.time()))
        if self._flush_handle is None:
            self._schedule_flush(self._last_commit + self._current_window() - loop.time())
        return await future

    async def close(self) -> None:
        """Commit every operation queued so far, then close the connection; later calls raise."""
        if self._closed:
            return
        self._closed = True
        if self._queue:
            self._drained = self._loop.create_future()
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._schedule_flush(0)
            await self._drained
        self._connection.close()

    @property
    def commit_window(self) -> float:
        """The window between two commits now, in seconds: wider while the relay is saturated."""
        return self._current_window()

    def _current_window(self) -> float:
        saturated = self._saturated is not None and self._saturated()
        return self._saturated_window if saturated else self._window

    def _schedule_flush(self, delay: float) -> None:
        if delay > 0:
            self._flush_handle = self._loop.call_later(delay, self._flush)
        else:
            # After everything else that is ready: the operations of every command processed
            # in this loop iteration commit together.
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._flush_once():
            self._last_commit = self._loop.time()
            next_flush = 0.0 if self._closed else self._current_window()
        else:
            self._fail_expired()
            next_flush = BUSY_RETRY_SECONDS
        if self._queue:
            self._schedule_flush(next_flush)
        elif self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _flush_once(self) -> bool:
        """Run the next batch and answer it; False (and nothing ran) if the file was locked."""
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
        try:
            outcomes = self._run_batch(batch)
        except _Busy:
            self._queue.extendleft(reversed(batch))
            return False
        except Exception as exc:  # the connection itself failed (a rollback did)
            outcomes = [(pending.future, exc, None) for pending in batch]
        except BaseException as exc:  # its callers must not wait forever, nor the queue stall
            interrupted = RuntimeError(f"the SQLite batch was interrupted by {exc!r}")
            _settle([(pending.future, interrupted, None) for pending in batch])
            if self._queue:
                self._schedule_flush(self._window)
            raise
        _settle(outcomes)
        return True

    def _run_batch(self, batch: list[_Pending]) -> list[_Outcome]:
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in _BUSY_CODES:
                raise _Busy from exc
            raise
        try:
            connection.execute("SAVEPOINT batch")
            try:
                results = _serve_runs(connection, batch)
                outcomes: list[_Outcome] = [
                    (p.future, None, result) for p, result in zip(batch, results, strict=True)
                ]
            except Exception:
                # Undone, then re-run one savepoint per operation: only the faulty one fails.
                connection.execute("ROLLBACK TO batch")
                outcomes = [_run_alone(connection, pending) for pending in batch]
            connection.execute("COMMIT")
        except BaseException:  # whatever it was, the connection must not stay in a transaction
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self.batches_committed += 1
        return outcomes

    def _fail_expired(self) -> None:
        """Fail the operations that have waited BUSY_TIMEOUT_SECONDS for the file to unlock."""
        expired_before = self._loop.time() - BUSY_TIMEOUT_SECONDS
        failed: list[_Outcome] = []
        while self._queue and self._queue[0].submitted_at <= expired_before:
            pending = self._queue.popleft()
            failed.append((pending.future, _locked_for(BUSY_TIMEOUT_SECONDS), None))
        _settle(failed)


def _locked_for(seconds: float) -> sqlite3.OperationalError:
    return sqlite3.OperationalError(
        f"the SQLite state file stayed locked for {seconds:g} s (another process is writing "
        "to it?): give each relay process its own RELAY_STATE_URL file, or use redis://"
    )


def _run_alone(connection: sqlite3.Connection, pending: _Pending) -> _Outcome:
    connection.execute("SAVEPOINT one")
    try:
        (result,) = _serve_runs(connection, [pending])
    except Exception as exc:
        connection.execute("ROLLBACK TO one")
        connection.execute("RELEASE one")
        return (pending.future, exc, None)
    connection.execute("RELEASE one")
    return (pending.future, None, result)


def _serve_runs(connection: sqlite3.Connection, batch: list[_Pending]) -> list[Any]:
    """The answers to ``batch``, in order: each run of one runner's requests in one call."""
    answers: list[Any] = []
    for runner, run in groupby(batch, key=lambda pending: pending.runner):
        requests = [pending.request for pending in run]
        answered = runner(connection, requests)
        if len(answered) != len(requests):
            raise RuntimeError(f"{runner!r} answered {len(answered)} of {len(requests)} requests")
        answers.extend(answered)
    return answers


def _call_each(
    connection: sqlite3.Connection, operations: Sequence[Callable[[sqlite3.Connection], T]]
) -> list[T]:
    return [operation(connection) for operation in operations]


def _settle(outcomes: list[_Outcome]) -> None:
    for future, error, result in outcomes:
        if future.done():  # its caller was cancelled; the operation still ran
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
