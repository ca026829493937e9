"""The SQLite writer: queued operations share transactions, fail alone, and are durable.

The writer is held at a gate (an operation that waits for an event) where a test needs a batch
of a known shape; everything else goes through the store as the relay uses it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import closing
from functools import partial
from pathlib import Path

import pytest

from service.state.sqlite import SqliteStateStore
from service.state.sqlite_writer import SqliteWriter, WriterClosed
from service.state.store import Claim, ClaimStatus, Correlation, RememberedMessage

RETENTION = 3600.0
LEASE = 10.0
GATE_TIMEOUT = 10.0


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


# --- the store ------------------------------------------------------------------------------


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
