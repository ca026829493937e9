"""The SQLite store: batched writes on the loop, checkpoints on a thread, durable answers.

Operations started together (in one loop iteration) form one batch; everything else goes
through the store as the relay uses it. Claims and completions of one batch cost a few
statements, counted by the connection's trace callback. Locks are real: a second connection
to the same file holds the write lock where a test needs the file busy.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

from service.contract.events import Correlation
from service.state import sqlite_checkpoint, sqlite_writer
from service.state.sqlite import SqliteStateStore
from service.state.sqlite_checkpoint import Checkpointer
from service.state.sqlite_schema import connect, connect_checkpointer
from service.state.sqlite_writer import SqliteWriter, WriterClosed
from service.state.store import Claim, ClaimStatus, RememberedMessage

RETENTION = 3600.0
LEASE = 10.0
WAIT = 10.0

T = TypeVar("T")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStateStore]:
    store = await opened(path)
    yield store
    await store.close()


def _read(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read through a connection of its own: what another process would see on disk."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


@contextmanager
def _write_locked(path: Path) -> Iterator[None]:
    """Another connection (as another process would) holds the file's write lock meanwhile."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("COMMIT")


# --- a bare writer over a table with a constraint --------------------------------------------


def _connect_numbers(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=0")
    connection.execute("CREATE TABLE IF NOT EXISTS numbers (n INTEGER PRIMARY KEY CHECK (n != 13))")
    return connection


def _insert(n: int, connection: sqlite3.Connection) -> int:
    connection.execute("INSERT INTO numbers (n) VALUES (?)", (n,))
    return n


@pytest.fixture
async def writer(path: Path) -> AsyncIterator[SqliteWriter]:
    writer = await SqliteWriter.start(partial(_connect_numbers, path))
    yield writer
    await writer.close()


def _together(*operations: Awaitable[T]) -> list[asyncio.Future[T]]:
    """Started in one go: they reach the writer in one loop iteration, hence one batch."""
    return [asyncio.ensure_future(operation) for operation in operations]


async def test_operations_submitted_together_commit_in_one_transaction(
    writer: SqliteWriter, path: Path
) -> None:
    committed_before = writer.batches_committed
    numbers = range(100, 200)  # none of them the forbidden 13

    results = await asyncio.gather(*_together(*(writer.run(partial(_insert, n)) for n in numbers)))

    assert results == list(numbers)
    assert writer.batches_committed - committed_before == 1
    assert _read(path, "SELECT count(*) FROM numbers") == [(100,)]


async def test_a_failing_operation_fails_alone_and_the_rest_of_its_batch_commits_once(
    writer: SqliteWriter, path: Path
) -> None:
    committed_before = writer.batches_committed
    inserts = _together(*(writer.run(partial(_insert, n)) for n in range(20)))
    results = await asyncio.gather(*inserts, return_exceptions=True)

    failed = {n: result for n, result in enumerate(results) if isinstance(result, Exception)}
    assert list(failed) == [13]
    assert isinstance(failed[13], sqlite3.IntegrityError)
    assert _read(path, "SELECT count(*) FROM numbers") == [(19,)]
    assert writer.batches_committed - committed_before == 1  # re-run under savepoints


async def test_an_operation_raising_a_python_error_fails_alone(writer: SqliteWriter) -> None:
    def broken(_: sqlite3.Connection) -> None:
        raise LookupError("deliberately broken")

    before, fails, after = _together(
        writer.run(partial(_insert, 1)), writer.run(broken), writer.run(partial(_insert, 2))
    )

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

    first = _together(*(writer.submit(n, double_all) for n in range(3)))
    (between,) = _together(writer.run(lambda _: len(calls)))
    second = _together(*(writer.submit(n, double_all) for n in range(3, 5)))

    assert await asyncio.gather(*first, *second) == [0, 2, 4, 6, 8]
    assert await between == 1  # ran after the first run, before the second
    assert calls == [[0, 1, 2], [3, 4]]


async def test_a_cancelled_caller_does_not_stop_the_others_of_its_batch(
    writer: SqliteWriter, path: Path
) -> None:
    inserts = _together(*(writer.run(partial(_insert, n)) for n in range(5)))
    await asyncio.sleep(0)  # each task runs up to its await on the writer
    inserts[2].cancel()
    results = await asyncio.gather(*inserts, return_exceptions=True)

    assert isinstance(results[2], asyncio.CancelledError)
    assert [results[n] for n in (0, 1, 3, 4)] == [0, 1, 3, 4]
    assert _read(path, "SELECT count(*) FROM numbers") == [(5,)]  # the cancelled one ran too


async def test_statements_run_on_the_event_loop_thread(writer: SqliteWriter) -> None:
    assert await writer.run(lambda _: threading.current_thread()) is threading.current_thread()


async def test_an_idle_writer_commits_at_once_and_a_busy_one_once_per_window(
    path: Path,
) -> None:
    window = 0.2
    writer = await SqliteWriter.start(partial(_connect_numbers, path), commit_window=window)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await writer.run(partial(_insert, 1))  # idle: no window to wait for
        first_done = loop.time()
        await writer.run(partial(_insert, 2))  # right after a commit: waits for the window
        second_done = loop.time()
    finally:
        await writer.close()

    assert first_done - started < window
    assert second_done - first_done >= window * 0.9  # the loop's timers may fire a tick early


async def test_the_window_widens_while_the_relay_says_it_is_saturated(path: Path) -> None:
    saturated = [False]
    writer = await SqliteWriter.start(
        partial(_connect_numbers, path),
        commit_window=0.001,
        saturated_window=0.3,
        saturated=lambda: saturated[0],
    )
    loop = asyncio.get_running_loop()
    try:
        await writer.run(partial(_insert, 1))
        committed = loop.time()
        await writer.run(partial(_insert, 2))  # not saturated: the narrow window
        assert loop.time() - committed < 0.25
        assert writer.commit_window == 0.001

        saturated[0] = True
        committed = loop.time()
        await writer.run(partial(_insert, 3))  # saturated: waits for the wide window
        assert loop.time() - committed >= 0.27
        assert writer.commit_window == 0.3
    finally:
        await writer.close()


async def test_a_locked_file_is_retried_without_blocking_the_loop_until_it_unlocks(
    writer: SqliteWriter, path: Path
) -> None:
    with _write_locked(path):
        insert = asyncio.ensure_future(writer.run(partial(_insert, 7)))
        ticks = 0
        for _ in range(10):  # the loop keeps running while the writer waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert not insert.done()
    assert await asyncio.wait_for(insert, WAIT) == 7
    assert ticks == 10
    assert _read(path, "SELECT n FROM numbers") == [(7,)]


async def test_operations_fail_naming_the_setting_once_the_file_stays_locked(
    writer: SqliteWriter, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_writer, "BUSY_TIMEOUT_SECONDS", 0.2)
    with _write_locked(path), pytest.raises(sqlite3.OperationalError, match="RELAY_STATE_URL"):
        await asyncio.wait_for(writer.run(partial(_insert, 7)), WAIT)
    assert await writer.run(partial(_insert, 8)) == 8  # and works again once it unlocks


async def test_close_waits_for_a_locked_file_then_commits_what_was_queued(path: Path) -> None:
    writer = await SqliteWriter.start(partial(_connect_numbers, path))
    with _write_locked(path):
        insert = asyncio.ensure_future(writer.run(partial(_insert, 5)))
        await asyncio.sleep(0.05)
        closing_writer = asyncio.ensure_future(writer.close())
        await asyncio.sleep(0.05)
        assert not closing_writer.done()
    await asyncio.wait_for(closing_writer, WAIT)

    assert await insert == 5
    with pytest.raises(WriterClosed):
        await writer.run(partial(_insert, 6))


async def test_a_failed_connect_raises(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await SqliteWriter.start(partial(connect, str(tmp_path / "missing" / "state.db")))


# --- the checkpointer ------------------------------------------------------------------------


def _checkpoint_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "relay-sqlite-checkpoint"}


def _size(path: Path) -> int:
    """The file's size in bytes, 0 when it does not exist."""
    return os.path.getsize(path) if os.path.exists(path) else 0


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


async def _fill(store: SqliteStateStore, count: int) -> None:
    """Enough rows that their pages outnumber SQLite's own checkpoint threshold (1000)."""
    blob = b"x" * 3000
    for start in range(0, count, 100):
        await asyncio.gather(
            *(store.complete(f"k{i}", "a", blob) for i in range(start, start + 100))
        )


async def test_the_writer_never_checkpoints_and_the_checkpointer_does(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_checkpoint, "CHECKPOINT_INTERVAL_SECONDS", 3600.0)
    store = await opened(path)
    try:
        empty_size = _size(path)
        await _fill(store, 1500)
        assert _size(path) == empty_size  # every page still only in the WAL
        assert _size(_wal(path)) > 1500 * 3000
    finally:
        await store.close()  # the checkpointer's last, truncating round

    assert _size(path) > 1500 * 3000
    assert _size(_wal(path)) == 0
    assert _read(path, "SELECT count(*) FROM claims") == [(1500,)]


async def test_checkpoints_run_in_the_background_on_a_thread_of_their_own(path: Path) -> None:
    threads_before = _checkpoint_threads()
    writer = await SqliteWriter.start(partial(connect, str(path)))
    checkpointer = await Checkpointer.start(partial(connect_checkpointer, str(path)), interval=0.02)
    store = SqliteStateStore.over(writer, retention_seconds=RETENTION, checkpointer=checkpointer)
    try:
        empty_size = _size(path)
        await _fill(store, 1500)
        rounds = checkpointer.rounds
        await _until(lambda: checkpointer.rounds >= rounds + 2)
        assert _size(path) > empty_size + 1500 * 3000  # copied back while running
        (thread,) = _checkpoint_threads() - threads_before
        assert not thread.daemon
    finally:
        await store.close()
    assert _checkpoint_threads() <= threads_before


async def test_a_wal_past_the_restart_threshold_is_restarted_under_steady_writes(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_checkpoint, "RESTART_FRAMES", 64)
    writer = await SqliteWriter.start(partial(connect, str(path)))
    checkpointer = await Checkpointer.start(partial(connect_checkpointer, str(path)), interval=0.01)
    store = SqliteStateStore.over(writer, retention_seconds=RETENTION, checkpointer=checkpointer)
    try:
        await _fill(store, 3000)  # ~9 MB of pages, written without a pause
        assert _size(_wal(path)) < 4_000_000
        assert checkpointer.failure is None
    finally:
        await store.close()
    assert _read(path, "SELECT count(*) FROM claims") == [(3000,)]


async def test_ping_fails_while_checkpoints_fail_or_once_the_thread_is_gone(
    store: SqliteStateStore, path: Path
) -> None:
    await store.ping()
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer.failure = sqlite3.OperationalError("disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        await store.ping()
    checkpointer.failure = None
    await checkpointer.close()
    with pytest.raises(sqlite3.OperationalError, match="checkpoint thread has stopped"):
        await store.ping()


async def test_a_failed_checkpointer_connect_raises_and_leaves_no_thread_behind(
    tmp_path: Path,
) -> None:
    threads_before = _checkpoint_threads()
    with pytest.raises(sqlite3.OperationalError):
        await Checkpointer.start(partial(sqlite3.connect, tmp_path / "missing" / "state.db"))
    assert _checkpoint_threads() <= threads_before


async def _until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


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
    store = await opened(path)
    claims = [asyncio.ensure_future(store.claim(f"k{i}", "a", LEASE)) for i in range(50)]
    await asyncio.sleep(0)  # each task runs up to its await on the writer

    await store.close()

    assert await asyncio.gather(*claims) == [Claim(ClaimStatus.CLAIMED)] * 50
    assert _read(path, "SELECT count(*) FROM claims") == [(50,)]


async def test_a_closed_store_refuses_every_operation(path: Path) -> None:
    store = await opened(path)
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
    yield Traced(SqliteStateStore.over(writer, retention_seconds=RETENTION), writer, statements)
    await writer.close()


class Batch:
    """The operations started through it reach the writer together and run as one batch; only
    that batch's statements count. It commits once, even when a request in it fails."""

    def __init__(self, traced: Traced) -> None:
        self.traced = traced
        self.started: list[asyncio.Future[Any]] = []
        self.statements: list[str] = []

    def start(self, operation: Awaitable[T]) -> asyncio.Future[T]:
        future = asyncio.ensure_future(operation)
        self.started.append(future)
        return future

    async def __aenter__(self) -> Batch:
        self.committed_before = self.traced.store.batches_committed
        self.traced.statements.clear()
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.wait(self.started)  # answered once their transaction has ended
        self.statements = list(self.traced.statements)
        assert self.statements[0] == "BEGIN IMMEDIATE"
        assert self.statements[-1] == "COMMIT"
        assert self.traced.store.batches_committed - self.committed_before == 1


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
    assert len(claiming.statements) <= 8  # BEGIN, SAVEPOINT, SELECT, INSERT claims, COMMIT
    assert len(completing.statements) <= 8  # and an INSERT each into correlations and requests
    tables = ("claims WHERE result IS NOT NULL", "correlations", "requests")
    assert [_read(path, f"SELECT count(*) FROM {table}") for table in tables] == [[(100,)]] * 3


async def test_a_batch_beyond_the_parameter_limit_of_one_statement_is_written_whole(
    traced: Traced, path: Path
) -> None:
    store = traced.store
    keys = [f"r{i}" for i in range(200)]  # 1400 claim parameters, SQLite allows 999 at once
    async with Batch(traced) as batch:
        for key in keys:
            message = RememberedMessage(f"m-{key}", Correlation(key, "s"))
            batch.start(store.complete(key, "a", key.encode(), message=message))
    claims = await asyncio.gather(*(store.claim(key, "b", LEASE) for key in keys))

    assert claims == [Claim(ClaimStatus.DONE, result=key.encode()) for key in keys]
    assert _read(path, "SELECT count(*) FROM claims WHERE result = CAST(key AS BLOB)") == [(200,)]
    assert _read(path, "SELECT count(*) FROM requests") == [(200,)]
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
    # The batch rolls back to its start, then runs again one request per savepoint.
    async with Batch(traced) as batch:
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


# --- schema versions -------------------------------------------------------------------------

_SCHEMA_1 = """
CREATE TABLE claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, claimed_at REAL NOT NULL,
    lease_until REAL NOT NULL, result BLOB, expires_at REAL NOT NULL, last_claim TEXT NOT NULL)
    WITHOUT ROWID;
CREATE INDEX claims_expiry ON claims (expires_at);
CREATE TABLE correlations (message_id TEXT PRIMARY KEY, request_id TEXT NOT NULL,
    request_source TEXT NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX correlations_expiry ON correlations (expires_at);
CREATE TABLE requests (request_key TEXT PRIMARY KEY, message_id TEXT NOT NULL,
    expires_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX requests_expiry ON requests (expires_at);
CREATE TABLE seen (key TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX seen_expiry ON seen (expires_at);
PRAGMA user_version=1;
"""


# Schema 2 as it shipped: rowid tables, correlations without a traceparent.
_SCHEMA_2 = """
CREATE TABLE claims (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
    claimed_at REAL NOT NULL, lease_until REAL NOT NULL, result BLOB, expires_at REAL NOT NULL,
    last_claim TEXT NOT NULL);
CREATE INDEX claims_expiry ON claims (expires_at);
CREATE TABLE correlations (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL, request_source TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX correlations_expiry ON correlations (expires_at);
CREATE TABLE requests (id INTEGER PRIMARY KEY, request_key TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX requests_expiry ON requests (expires_at);
CREATE TABLE seen (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, expires_at REAL NOT NULL);
CREATE INDEX seen_expiry ON seen (expires_at);
PRAGMA user_version=2;
"""


async def test_a_file_of_schema_1_is_migrated_with_its_records(path: Path) -> None:
    later = 4_000_000_000.0  # far in the future: nothing expires during the test
    with closing(sqlite3.connect(path)) as db:
        db.executescript(_SCHEMA_1)
        db.executemany(
            "INSERT INTO claims VALUES (?, 'a', 1.0, 2.0, ?, ?, 'done')",
            [(f"billing/r{i}", f"result {i}".encode(), later + i) for i in range(3)],
        )
        db.execute("INSERT INTO correlations VALUES ('m1', 'r1', 'billing', ?)", (later,))
        db.execute("INSERT INTO requests VALUES ('billing/r1', 'm1', ?)", (later,))
        db.execute("INSERT INTO seen VALUES ('webhook-1', ?)", (later,))
        db.commit()

    store = await opened(path)
    try:
        assert await store.claim("billing/r2", "b", LEASE) == Claim(
            ClaimStatus.DONE, result=b"result 2"
        )
        assert await store.correlation_for("m1") == Correlation("r1", "billing")
        assert await store.message_for_request("billing/r1") == "m1"
        assert await store.first_seen("webhook-1", 60) is False
        assert await store.claim("billing/new", "b", LEASE) == Claim(ClaimStatus.CLAIMED)
    finally:
        await store.close()

    assert _read(path, "PRAGMA user_version") == [(3,)]
    assert _read(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v1'") == [(0,)]
    assert _read(path, "SELECT id, key FROM claims ORDER BY id") == [
        (1, "billing/r0"),
        (2, "billing/r1"),
        (3, "billing/r2"),
        (4, "billing/new"),
    ]


async def test_a_file_of_schema_2_counts_its_unfinished_claims_as_called(path: Path) -> None:
    """A relay from before the call mark may have died mid-call: its successor must look the
    outcome up rather than send again."""
    with closing(sqlite3.connect(path)) as db:
        db.executescript(_SCHEMA_2)
        db.execute("INSERT INTO claims VALUES (1, 'billing/r1', 'a', 1.0, 2.0, NULL, ?, 'claimed')",
                   (4_000_000_000.0,))  # fmt: skip
        db.commit()

    store = await opened(path)
    try:
        assert await store.claim("billing/r1", "b", LEASE) == Claim(
            ClaimStatus.EXPIRED, claimed_at=1.0
        )
    finally:
        await store.close()
    assert _read(path, "PRAGMA user_version") == [(3,)]


async def test_a_file_of_schema_2_gains_the_traceparent_and_keeps_its_correlations(
    path: Path,
) -> None:
    later = 4_000_000_000.0
    with closing(sqlite3.connect(path)) as db:
        db.executescript(_SCHEMA_2)
        db.execute("INSERT INTO correlations VALUES (1, 'm1', 'r1', 'billing', ?)", (later,))
        db.commit()

    store = await opened(path)
    try:
        assert await store.correlation_for("m1") == Correlation("r1", "billing")
        traced = Correlation("r2", "billing", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
        await store.complete("billing/r2", "a", b"r", message=RememberedMessage("m2", traced))
        assert await store.correlation_for("m2") == traced
    finally:
        await store.close()
    assert _read(path, "PRAGMA user_version") == [(3,)]


async def test_new_rows_are_stored_in_the_order_they_were_written(
    store: SqliteStateStore, path: Path
) -> None:
    for key in ("zz", "aa", "mm"):  # not key order: insertion order decides the page
        await store.claim(key, "a", LEASE)
    assert _read(path, "SELECT key FROM claims ORDER BY id") == [("zz",), ("aa",), ("mm",)]


async def test_a_batch_interrupted_by_a_base_exception_fails_its_callers_and_nothing_else(
    writer: SqliteWriter, path: Path
) -> None:
    class Interrupt(BaseException):
        pass

    def interrupted(_: sqlite3.Connection, numbers: Sequence[int]) -> list[int]:
        raise Interrupt

    loop = asyncio.get_running_loop()
    escaped: list[object] = []
    loop.set_exception_handler(lambda _, context: escaped.append(context.get("exception")))
    try:
        with pytest.raises(RuntimeError, match="interrupted by Interrupt"):
            await asyncio.wait_for(writer.submit(1, interrupted), WAIT)
    finally:
        loop.set_exception_handler(None)

    assert [type(exc) for exc in escaped] == [Interrupt]  # not swallowed
    assert await writer.run(partial(_insert, 3)) == 3  # no "transaction within a transaction"
    assert _read(path, "SELECT n FROM numbers") == [(3,)]


async def opened(path: Path) -> SqliteStateStore:
    store = SqliteStateStore(str(path), retention_seconds=RETENTION)
    await store.open()
    return store
