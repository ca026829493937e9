"""The SQLite writer thread: one connection, and queued operations committed together.

A caller's await returns only after the transaction that ran its operation has committed, so
grouping saves thread hops, loop wakeups and commits without weakening durability. Requests of
one kind queued next to each other run in one call of their runner, which may serve them all
with a few set-based statements: every statement step lets the GIL go, and taking it back from
a busy event loop costs the thread switches and waits.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any, NamedTuple, TypeVar

R = TypeVar("R")
T = TypeVar("T")

# Serves a run of consecutive requests in one go, inside the batch's transaction: one answer
# per request, in order. A request that must fail alone raises; the batch is then re-run one
# request per transaction, so only the faulty one fails.
BatchRunner = Callable[[sqlite3.Connection, Sequence[R]], Sequence[T]]

# Enough to spread one commit over a burst of commands; few enough that one batch does not
# hold the write lock, and its callers' answers, for long.
MAX_BATCH = 256
# How often an idle writer checks that its event loop still exists: a store nobody closed
# must not keep the process from exiting (the thread is not a daemon).
IDLE_CHECK_SECONDS = 1.0


class WriterClosed(sqlite3.ProgrammingError):
    """An operation was submitted after ``close()``."""


class _Pending(NamedTuple):
    request: Any
    runner: BatchRunner[Any, Any]
    future: asyncio.Future[Any]


# A future, and the exception or the result to give it.
_Outcome = tuple[asyncio.Future[Any], Exception | None, Any]


class SqliteWriter:
    """Owns one ``sqlite3`` connection on a thread of its own; nothing else touches it.

    Operations submitted during one event-loop iteration are handed over together, once. The
    thread waits for the first hand-over, takes whatever else was handed over by then (closing
    the batch once it holds MAX_BATCH or more), runs them all in one ``BEGIN IMMEDIATE ...
    COMMIT`` and answers the batch with a single wakeup of the event loop. When an operation
    raises, the batch is rolled back and re-run one transaction per operation, so only the
    faulty one fails.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        loop: asyncio.AbstractEventLoop,
        thread_name: str,
    ) -> None:
        self._connect = connect
        self._loop = loop
        # Lists of operations, one per loop iteration that submitted any; None: stop.
        self._queue: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()
        self._outbox: list[_Pending] = []
        self._thread = threading.Thread(target=self._main, name=thread_name)
        self._started: asyncio.Future[None] = loop.create_future()
        self._closed = False
        self.batches_committed = 0  # transactions that committed; read for observability

    @classmethod
    async def start(
        cls, connect: Callable[[], sqlite3.Connection], *, thread_name: str = "relay-sqlite"
    ) -> SqliteWriter:
        """Run ``connect`` on the new thread; raises what it raises, leaving no thread behind."""
        writer = cls(connect, asyncio.get_running_loop(), thread_name)
        writer._thread.start()
        try:
            await writer._started
        except BaseException:
            await writer.close()
            raise
        return writer

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
        future: asyncio.Future[T] = self._loop.create_future()
        self._outbox.append(_Pending(request, runner, future))
        if len(self._outbox) == 1:
            # Handed over once the loop has run everything else that is ready: the operations
            # of every command processed in this iteration travel, and commit, together.
            self._loop.call_soon(self._hand_over)
        return await future

    def _hand_over(self) -> None:
        if self._outbox:
            self._queue.put(self._outbox)
            self._outbox = []

    async def close(self) -> None:
        """Finish every operation queued so far, then stop the thread and close the file."""
        if self._closed:
            return
        self._closed = True
        self._hand_over()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    # --- on the writer thread ------------------------------------------------------------

    def _main(self) -> None:
        try:
            connection = self._connect()
        except Exception as exc:
            self._answer([(self._started, exc, None)])
            return
        try:
            if self._answer([(self._started, None, None)]):
                self._serve(connection)
        finally:
            connection.close()

    def _serve(self, connection: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            try:
                outcomes = self._run_batch(connection, batch)
            except Exception as exc:  # the connection itself failed (a rollback did)
                outcomes = [(pending.future, exc, None) for pending in batch]
            if outcomes and not self._answer(outcomes):
                return

    def _next_batch(self) -> tuple[list[_Pending], bool]:
        """Wait for one operation, then take what else is queued; True once told to stop."""
        batch: list[_Pending] = []
        handed = self._wait()
        while handed is not None:
            batch.extend(handed)
            if len(batch) >= MAX_BATCH:
                return batch, False
            try:
                handed = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _wait(self) -> list[_Pending] | None:
        while True:
            try:
                return self._queue.get(timeout=IDLE_CHECK_SECONDS)
            except queue.Empty:
                if self._loop.is_closed():
                    return None

    def _run_batch(self, connection: sqlite3.Connection, batch: list[_Pending]) -> list[_Outcome]:
        if not batch:
            return []
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # no write lock (another process kept it): nothing ran
            return [(pending.future, exc, None) for pending in batch]
        try:
            results = _serve_runs(connection, batch)
            connection.execute("COMMIT")
        except Exception as exc:
            connection.rollback()
            if len(batch) == 1:
                return [(batch[0].future, exc, None)]
            return [outcome for one in batch for outcome in self._run_batch(connection, [one])]
        self.batches_committed += 1
        return [(p.future, None, result) for p, result in zip(batch, results, strict=True)]

    def _answer(self, outcomes: list[_Outcome]) -> bool:
        """Hand ``outcomes`` to the loop in one wakeup; False when the loop is gone."""
        try:
            self._loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:  # the loop was closed: nobody is waiting any more
            return False
        return True


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
