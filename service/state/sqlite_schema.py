"""The SQLite state file: its tables, its version, and the connection the writer opens on it."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1
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
    last_claim TEXT NOT NULL    -- the status of the claim() or complete() that wrote the row
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


class SchemaMismatch(sqlite3.DatabaseError):
    """The file was written by a relay with another schema version."""


def connect(path: str) -> sqlite3.Connection:
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
