"""The SQLite state file: its tables, its version, and the two connections the store opens on it:
the writer's, used on the event loop, and the checkpointer's, on its thread."""

from __future__ import annotations

import sqlite3

# 2: rowid tables (1 keyed every table by its text key, so each new row went to a random page).
# 3: claims.called_at, set just before the provider is called; correlations.traceparent,
# the command's trace for webhook spans to link to.
SCHEMA_VERSION = 3
# Opening the file, and the checkpointer, wait this long for another process holding it (an
# overlapping restart); the writer never waits on the loop: it retries instead.
BUSY_TIMEOUT_MS = 5000
# The writer's page cache (SQLite's default is 2 MB): the tables' right edges and the upper
# levels of the key indexes stay in memory. Bounded, so the relay's memory stays flat however
# large the file grows; a larger cache measured no faster (benchmarks/README.md).
CACHE_KIB = 4096

# Every table is a rowid table with its key UNIQUE: rows are stored in the order they were
# written, so the rows a transaction inserts, and later updates, share a few pages; only the
# key indexes (small entries) take a random page per row. A table keyed by its text key puts
# each row, with its stored result of ~1 KB, on a random page: 2-3 times the pages written
# per transaction.
_TABLES = """
CREATE TABLE IF NOT EXISTS claims (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    lease_until REAL NOT NULL,
    result BLOB,                -- NULL while claimed, the stored outcome once done
    expires_at REAL NOT NULL,
    last_claim TEXT NOT NULL,   -- the status of the claim() or complete() that wrote the row
    called_at REAL              -- NULL until the holder is about to call the provider
);
CREATE INDEX IF NOT EXISTS claims_expiry ON claims (expires_at);
CREATE TABLE IF NOT EXISTS correlations (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    request_source TEXT NOT NULL,
    expires_at REAL NOT NULL,
    traceparent TEXT            -- NULL when the command was not traced
);
CREATE INDEX IF NOT EXISTS correlations_expiry ON correlations (expires_at);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    request_key TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_expiry ON requests (expires_at);
CREATE TABLE IF NOT EXISTS seen (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_at);
"""

# Each table's columns but the rowid: what schema 1 had, copied over as they are.
_COLUMNS = {
    "claims": "key, owner, claimed_at, lease_until, result, expires_at, last_claim",
    "correlations": "message_id, request_id, request_source, expires_at",
    "requests": "request_key, message_id, expires_at",
    "seen": "key, expires_at",
}

# Schema 1 -> 2 in one transaction: the old tables (and their indexes, whose names the new
# ones reuse) step aside, the new ones take their rows, oldest first.
_FROM_VERSION_1 = (
    "".join(
        f"DROP INDEX {table}_expiry; ALTER TABLE {table} RENAME TO {table}_v1;\n"
        for table in _COLUMNS
    )
    + _TABLES
    + "".join(
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_v1 ORDER BY expires_at;\n"
        f"DROP TABLE {table}_v1;\n"
        for table, columns in _COLUMNS.items()
    )
)


# Schema 2 -> 3: two nullable columns. Claims left unfinished by a relay from before schema 3
# may have been mid-call: they count as called, so their successor looks the outcome up instead
# of sending again. Correlations written before it simply have no trace to link.
_CALLED_BEFORE_3 = "UPDATE claims SET called_at = claimed_at WHERE result IS NULL;\n"
_FROM_VERSION_2 = (
    "ALTER TABLE claims ADD COLUMN called_at REAL;\n"
    "ALTER TABLE correlations ADD COLUMN traceparent TEXT;\n" + _CALLED_BEFORE_3
)


_MIGRATIONS = {1: _FROM_VERSION_1 + _CALLED_BEFORE_3, 2: _FROM_VERSION_2}


class SchemaMismatch(sqlite3.DatabaseError):
    """The file was written by a relay with another schema version."""


def connect(path: str) -> sqlite3.Connection:
    """The writer's connection, made on a thread and used on the loop; creates the schema.

    Transactions are the writer's own, hence no isolation level. It never checkpoints (the
    checkpointer does, off the loop) and never waits for a lock (the writer retries).
    """
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _prepare(connection)
        connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        connection.execute("PRAGMA busy_timeout=0")
    except BaseException:
        connection.close()
        raise
    return connection


def connect_checkpointer(path: str) -> sqlite3.Connection:
    """The checkpointer's connection, on its own thread; the file exists by then."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection) -> None:
    """Pragmas for a single-writer service, then the schema (refusing unknown versions)."""
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode=WAL").fetchall()
    connection.execute("PRAGMA synchronous=NORMAL")
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version not in (0, *_MIGRATIONS, SCHEMA_VERSION):
        raise SchemaMismatch(
            f"schema version {version} is not {SCHEMA_VERSION}: the file belongs to another "
            "relay version; point RELAY_STATE_URL at a new file"
        )
    steps = _MIGRATIONS.get(version, _TABLES)
    try:
        connection.executescript(
            f"BEGIN IMMEDIATE; {steps} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
        )
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
