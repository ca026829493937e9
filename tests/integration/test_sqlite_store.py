"""The SQLite writer: queued operations share transactions, fail alone, and are durable.

The writer is held at a gate (an operation that waits for an event) where a test needs a batch
of a known shape; everything else goes through the store as the relay uses it. Claims and
completions of one batch cost a few statements, counted by the connection's trace callback.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

from service.state.sqlite import SqliteStateStore
from service.state.sqlite_schema import connect
from service.state.sqlite_writer import SqliteWriter, WriterClosed
from service.state.store import Claim, ClaimStatus, Correlation, RememberedMessage

RETENTION = 3600.0
LEASE = 10.0
GATE_TIMEOUT = 10.0

T = TypeVar("T")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStateStore]:
    store = await SqliteStateStore.open(str(path), retention_seconds=RETENTION)
    yield store
    await store.close()


def _read(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read through a connection of its own: what another process would see on disk."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


# --- a bare writer over a table with a constraint --------------------------------------------


def _connect_numbers(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS numbers (n INTEGER PRIMARY KEY CHECK (n != 13))")
    return connection


def _insert(n: int, connection: sqlite3.Connection) -> int:
    connection.execute("INSERT INTO numbers (n) VALUES (?)", (n,))
    return n


def _hold(entered: threading.Event, release: threading.Event, _: sqlite3.Connection) -> None:
    entered.set()
    release.wait(GATE_TIMEOUT)


class Gate:
    """Keeps the writer busy so that the operations submitted meanwhile form one batch."""

    def __init__(self, writer: SqliteWriter) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.held = asyncio.ensure_future(writer.run(partial(_hold, self.entered, self.release)))

    async def __aenter__(self) -> Gate:
        assert await asyncio.to_thread(self.entered.wait, GATE_TIMEOUT)
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.sleep(0)  # the operations submitted meanwhile reach the queue
        self.release.set()
        await self.held


@pytest.fixture
async def writer(path: Path) -> AsyncIterator[SqliteWriter]:
    writer = await SqliteWriter.start(partial(_connect_numbers, path))
    yield writer
    await writer.close()


async def test_operations_queued_behind_a_busy_writer_commit_in_one_transaction(
    writer: SqliteWriter, path: Path
) -> None:
    async with Gate(writer):
        numbers = range(100, 200)  # none of them the forbidden 13
        inserts = [asyncio.ensure_future(writer.run(partial(_insert, n))) for n in numbers]
        committed_before = writer.batches_committed
    results = await asyncio.gather(*inserts)

    assert results == list(numbers)
    assert writer.batches_committed - committed_before == 2  # the gate's, then all hundred
    assert _read(path, "SELECT count(*) FROM numbers") == [(100,)]


async def test_a_failing_operation_fails_alone_and_the_rest_of_its_batch_commits(
    writer: SqliteWriter, path: Path
) -> None:
    async with Gate(writer):
        inserts = [asyncio.ensure_future(writer.run(partial(_insert, n))) for n in range(20)]
    results = await asyncio.gather(*inserts, return_exceptions=True)

    failed = {n: result for n, result in enumerate(results) if isinstance(result, Exception)}
    assert list(failed) == [13]
    assert isinstance(failed[13], sqlite3.IntegrityError)
    assert _read(path, "SELECT count(*) FROM numbers") == [(19,)]


async def test_an_operation_raising_a_python_error_fails_alone(writer: SqliteWriter) -> None:
    def broken(_: sqlite3.Connection) -> None:
        raise LookupError("deliberately broken")

    async with Gate(writer):
        before = asyncio.ensure_future(writer.run(partial(_insert, 1)))
        fails = asyncio.ensure_future(writer.run(broken))
        after = asyncio.ensure_future(writer.run(partial(_insert, 2)))

    assert await before == 1
    with pytest.raises(LookupError, match="deliberately broken"):
        await fails
    assert await after == 2


async def test_consecutive_requests_of_one_runner_are_served_in_one_call_in_order(
    writer: SqliteWriter,
) -> None:
    calls: list[list[int]] = []

    def double_all(_: sqlite3.Connection, numbers: Sequence[int]) -> list[int]:
        calls.append(list(numbers))
        return [2 * n for n in numbers]

    async with Gate(writer):
        first = [asyncio.ensure_future(writer.submit(n, double_all)) for n in range(3)]
        between = asyncio.ensure_future(writer.run(lambda _: len(calls)))
        second = [asyncio.ensure_future(writer.submit(n, double_all)) for n in range(3, 5)]

    assert await asyncio.gather(*first, *second) == [0, 2, 4, 6, 8]
    assert await between == 1  # ran after the first run, before the second
    assert calls == [[0, 1, 2], [3, 4]]


async def test_a_cancelled_caller_does_not_stop_the_others_of_its_batch(
    writer: SqliteWriter, path: Path
) -> None:
    async with Gate(writer):
        inserts = [asyncio.ensure_future(writer.run(partial(_insert, n))) for n in range(5)]
        await asyncio.sleep(0)  # each task runs up to its await on the writer
        inserts[2].cancel()
    results = await asyncio.gather(*inserts, return_exceptions=True)

    assert isinstance(results[2], asyncio.CancelledError)
    assert [results[n] for n in (0, 1, 3, 4)] == [0, 1, 3, 4]
    assert _read(path, "SELECT count(*) FROM numbers") == [(5,)]  # the cancelled one ran too


def _writer_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "relay-sqlite"}


async def test_the_writer_runs_on_a_named_thread_and_leaves_none_behind_on_close(
    path: Path,
) -> None:
    threads_before = _writer_threads()
    writer = await SqliteWriter.start(partial(_connect_numbers, path))
    thread = await writer.run(lambda _: threading.current_thread())
    await writer.close()

    assert thread.name == "relay-sqlite"
    assert not thread.daemon
    assert not thread.is_alive()
    assert _writer_threads() <= threads_before


async def test_a_failed_connect_raises_and_leaves_no_thread_behind(tmp_path: Path) -> None:
    threads_before = _writer_threads()

    with pytest.raises(sqlite3.OperationalError):
        await SqliteWriter.start(partial(sqlite3.connect, tmp_path / "missing" / "state.db"))

    assert _writer_threads() <= threads_before


# --- the store -----------------------------------------------------------------------------


async def test_concurrent_claims_get_their_own_answers_in_few_transactions(
    store: SqliteStateStore,
) -> None:
    await asyncio.gather(*(store.complete(f"done-{i}", "a", f"r{i}".encode()) for i in range(100)))
    committed_before = store.batches_committed

    claims = await asyncio.gather(
        *(store.claim(f"done-{i % 100}", f"o{i}", LEASE) for i in range(100)),
        *(store.claim(f"new-{i % 200}", f"o{i}", LEASE) for i in range(400)),
    )

    assert claims[:100] == [Claim(ClaimStatus.DONE, result=f"r{i}".encode()) for i in range(100)]
    assert claims[100:300] == [Claim(ClaimStatus.CLAIMED)] * 200  # first claim of each key
    assert claims[300:] == [Claim(ClaimStatus.BUSY)] * 200  # queued behind it
    assert store.batches_committed - committed_before <= 20


async def test_a_claim_is_on_disk_when_its_await_returns(
    store: SqliteStateStore, path: Path
) -> None:
    await store.claim("k", "a", LEASE)

    assert _read(path, "SELECT owner, result FROM claims WHERE key = 'k'") == [("a", None)]


async def test_a_completion_and_its_message_are_on_disk_when_its_await_returns(
    store: SqliteStateStore, path: Path
) -> None:
    correlation = Correlation(request_id="r1", request_source="billing")
    await store.complete("billing/r1", "a", b"r", message=RememberedMessage("m1", correlation))

    assert _read(path, "SELECT result FROM claims") == [(b"r",)]
    assert _read(path, "SELECT message_id, request_id FROM correlations") == [("m1", "r1")]
    assert _read(path, "SELECT request_key, message_id FROM requests") == [("billing/r1", "m1")]


async def test_close_completes_the_operations_already_queued(path: Path) -> None:
    store = await SqliteStateStore.open(str(path), retention_seconds=RETENTION)
    claims = [asyncio.ensure_future(store.claim(f"k{i}", "a", LEASE)) for i in range(50)]
    await asyncio.sleep(0)  # each task runs up to its await on the writer

    await store.close()

    assert await asyncio.gather(*claims) == [Claim(ClaimStatus.CLAIMED)] * 50
    assert _read(path, "SELECT count(*) FROM claims") == [(50,)]


async def test_a_closed_store_refuses_every_operation(path: Path) -> None:
    store = await SqliteStateStore.open(str(path), retention_seconds=RETENTION)
    await store.close()
    await store.close()  # closing twice is harmless

    with pytest.raises(WriterClosed, match="closed"):
        await store.claim("k", "a", LEASE)
    with pytest.raises(WriterClosed, match="closed"):
        await store.ping()


# --- the store: claims and completions served set-based --------------------------------------


@dataclass
class Traced:
    """A store whose writer records every SQL statement it executes."""

    store: SqliteStateStore
    writer: SqliteWriter
    statements: list[str]


def _connect_traced(path: Path, statements: list[str]) -> sqlite3.Connection:
    connection = connect(str(path))
    connection.set_trace_callback(statements.append)
    return connection


@pytest.fixture
async def traced(path: Path) -> AsyncIterator[Traced]:
    statements: list[str] = []
    writer = await SqliteWriter.start(partial(_connect_traced, path, statements))
    yield Traced(SqliteStateStore(writer, retention_seconds=RETENTION), writer, statements)
    await writer.close()


class Batch(Gate):
    """The operations started through it run as one batch; only that batch's statements count.

    The batch commits once, unless told that a failure makes it re-run one request at a time.
    """

    def __init__(self, traced: Traced, *, commits: int = 1) -> None:
        super().__init__(traced.writer)
        self.traced = traced
        self.commits = commits
        self.started: list[asyncio.Future[Any]] = []
        self.statements: list[str] = []

    def start(self, operation: Awaitable[T]) -> asyncio.Future[T]:
        future = asyncio.ensure_future(operation)
        self.started.append(future)
        return future

    async def __aenter__(self) -> Batch:
        await super().__aenter__()
        self.committed_before = self.traced.store.batches_committed
        self.traced.statements.clear()  # the gate's BEGIN is behind us, its COMMIT ahead
        return self

    async def __aexit__(self, *_: object) -> None:
        await super().__aexit__()
        await asyncio.wait(self.started)  # answered once their transactions have ended
        gate_commit, *self.statements = self.traced.statements
        assert gate_commit == "COMMIT"
        committed = self.traced.store.batches_committed - self.committed_before
        assert committed == self.commits + 1  # and the gate's


async def test_a_batch_of_claims_and_one_of_completions_take_a_few_statements_each(
    traced: Traced, path: Path
) -> None:
    store = traced.store
    async with Batch(traced) as claiming:
        claims = [claiming.start(store.claim(f"r{i}", "a", LEASE)) for i in range(100)]
    async with Batch(traced) as completing:
        completions = [
            completing.start(
                store.complete(
                    f"r{i}",
                    "a",
                    b"ok",
                    message=RememberedMessage(f"m{i}", Correlation(f"r{i}", "s")),
                )
            )
            for i in range(100)
        ]

    assert await asyncio.gather(*claims) == [Claim(ClaimStatus.CLAIMED)] * 100
    await asyncio.gather(*completions)
    assert len(claiming.statements) <= 8  # BEGIN, SELECT, INSERT claims, COMMIT
    assert len(completing.statements) <= 8  # and an INSERT each into correlations and requests
    tables = ("claims WHERE result IS NOT NULL", "correlations", "requests")
    assert [_read(path, f"SELECT count(*) FROM {table}") for table in tables] == [[(100,)]] * 3


async def test_a_batch_beyond_the_parameter_limit_of_one_statement_is_written_whole(
    traced: Traced, path: Path
) -> None:
    store = traced.store
    keys = [f"r{i}" for i in range(300)]  # 2100 claim parameters, SQLite allows 999 at once
    async with Batch(traced) as batch:
        for key in keys:
            message = RememberedMessage(f"m-{key}", Correlation(key, "s"))
            batch.start(store.complete(key, "a", key.encode(), message=message))
        claims = [batch.start(store.claim(key, "b", LEASE)) for key in keys]

    assert await asyncio.gather(*claims) == [
        Claim(ClaimStatus.DONE, result=key.encode()) for key in keys
    ]
    assert _read(path, "SELECT count(*) FROM claims WHERE result = CAST(key AS BLOB)") == [(300,)]
    assert _read(path, "SELECT count(*) FROM requests") == [(300,)]
    assert len(batch.statements) <= 16  # a few chunks of each statement


async def test_the_same_key_twice_in_one_batch_is_decided_as_if_one_after_the_other(
    traced: Traced,
) -> None:
    store = traced.store
    async with Batch(traced) as batch:
        first = batch.start(store.claim("k", "a", LEASE))
        other = batch.start(store.claim("k", "b", LEASE))
        again = batch.start(store.claim("k", "a", LEASE))

    assert await first == Claim(ClaimStatus.CLAIMED)
    assert await other == Claim(ClaimStatus.BUSY)
    assert await again == Claim(ClaimStatus.CLAIMED)


async def test_a_claim_after_a_completion_in_the_same_batch_sees_it_done(traced: Traced) -> None:
    store = traced.store
    async with Batch(traced) as batch:
        completed = batch.start(store.complete("k", "a", b"r"))
        late = batch.start(store.complete("k", "b", b"late"))
        claim = batch.start(store.claim("k", "c", LEASE))

    await asyncio.gather(completed, late)
    assert await claim == Claim(ClaimStatus.DONE, result=b"r")


async def test_other_operations_in_a_batch_run_between_the_claims_in_submission_order(
    traced: Traced,
) -> None:
    store = traced.store
    async with Batch(traced) as batch:
        first = batch.start(store.claim("k", "a", LEASE))
        released = batch.start(store.release("k", "a"))
        second = batch.start(store.claim("k", "b", LEASE))
        busy = batch.start(store.claim("k", "a", LEASE))

    assert await first == Claim(ClaimStatus.CLAIMED)
    await released
    assert await second == Claim(ClaimStatus.CLAIMED)
    assert await busy == Claim(ClaimStatus.BUSY)


async def test_a_failing_request_fails_alone_and_the_rest_of_its_batch_is_answered(
    traced: Traced, path: Path
) -> None:
    store = traced.store
    correlation = Correlation(request_id="r1", request_source="billing")
    # The batch rolls back, then runs again one request per transaction: four of them commit.
    async with Batch(traced, commits=4) as batch:
        done = batch.start(store.complete("done", "a", b"r"))
        before = batch.start(store.claim("before", "a", LEASE))
        no_owner = batch.start(store.claim("bad", None, LEASE))  # type: ignore[arg-type]
        remembered = batch.start(
            store.complete("billing/r1", "a", b"r", message=RememberedMessage("m1", correlation))
        )
        after = batch.start(store.claim("done", "b", LEASE))

    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        await no_owner
    await asyncio.gather(done, remembered)
    assert await before == Claim(ClaimStatus.CLAIMED)
    assert await after == Claim(ClaimStatus.DONE, result=b"r")
    assert await store.correlation_for("m1") == correlation
    assert _read(path, "SELECT key FROM claims ORDER BY key") == [
        ("before",),
        ("billing/r1",),
        ("done",),
    ]
