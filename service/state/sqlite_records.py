"""Claims and completions on SQLite, served a run at a time with set-based statements.

Python's sqlite3 releases the GIL around every statement step and must take it back after;
while the event loop is busy that can take up to a GIL switch interval and several
thread switches. So a run of requests costs one SELECT of the rows it touches and one
multi-row upsert per table it changes, however many requests it holds; the decisions in
between are the pure ones of ``records``, taken in submission order as if the requests had run
one after the other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from service.state.records import Entry, Held, decide_claim, decide_complete
from service.state.store import Claim, ClaimStatus, RememberedMessage

# SQLite's limit on the parameters of one statement before 3.32 (and in builds that keep it).
MAX_PARAMETERS = 999

_SELECT_CLAIMS = """
SELECT key, owner, claimed_at, lease_until, result, expires_at, called_at FROM claims
WHERE key IN ({})
"""

_UPSERT_CLAIMS = """
INSERT INTO claims (key, owner, claimed_at, lease_until, result, expires_at, called_at, last_claim)
VALUES {}
ON CONFLICT (key) DO UPDATE SET
    owner = excluded.owner, claimed_at = excluded.claimed_at,
    lease_until = excluded.lease_until, result = excluded.result,
    expires_at = excluded.expires_at, called_at = excluded.called_at,
    last_claim = excluded.last_claim
"""

_UPSERT_CORRELATIONS = """
INSERT INTO correlations (message_id, request_id, request_source, traceparent, expires_at)
VALUES {}
ON CONFLICT (message_id) DO UPDATE SET
    request_id = excluded.request_id, request_source = excluded.request_source,
    traceparent = excluded.traceparent, expires_at = excluded.expires_at
"""

_UPSERT_REQUESTS = """
INSERT INTO requests (request_key, message_id, expires_at)
VALUES {}
ON CONFLICT (request_key) DO UPDATE SET
    message_id = excluded.message_id, expires_at = excluded.expires_at
"""

Row = tuple[Any, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    key: str
    owner: str
    now: float
    lease_seconds: float
    uncalled: str | None = None


@dataclass(frozen=True, slots=True)
class CompleteRequest:
    key: str
    owner: str
    now: float
    result: bytes
    message: RememberedMessage | None = None


RecordRequest = ClaimRequest | CompleteRequest


def run_record_requests(
    connection: sqlite3.Connection,
    requests: Sequence[RecordRequest],
    *,
    retention_seconds: float,
) -> list[Claim | None]:
    """One answer per request, in order: its Claim for a claim, None for a completion."""
    keys = list(dict.fromkeys(request.key for request in requests))
    changes = _Changes(_read_entries(connection, keys), retention_seconds)
    answers = [changes.apply(request) for request in requests]
    _upsert(connection, _UPSERT_CLAIMS, list(changes.claims.values()))
    _upsert(connection, _UPSERT_CORRELATIONS, list(changes.correlations.values()))
    _upsert(connection, _UPSERT_REQUESTS, list(changes.requests.values()))
    return answers


class _Changes:
    """The rows read, updated request by request; the rows to write, the last per key."""

    def __init__(self, entries: dict[str, Entry], retention_seconds: float) -> None:
        self._entries = entries
        self._retention = retention_seconds
        self.claims: dict[str, Row] = {}
        self.correlations: dict[str, Row] = {}
        self.requests: dict[str, Row] = {}

    def apply(self, request: RecordRequest) -> Claim | None:
        entry = self._entries.get(request.key)
        held = None if entry is None else entry.live_at(request.now)
        if isinstance(request, ClaimRequest):
            return self._claim(request, held)
        self._complete(request, held)
        return None

    def _claim(self, request: ClaimRequest, held: Held | None) -> Claim:
        claim, entry = decide_claim(
            held,
            owner=request.owner,
            now=request.now,
            lease_seconds=request.lease_seconds,
            retention_seconds=self._retention,
            uncalled=request.uncalled,
        )
        self._put(request.key, entry, claim.status)
        return claim

    def _complete(self, request: CompleteRequest, held: Held | None) -> None:
        if request.message is not None:
            self._remember(request.key, request.message, request.now + self._retention)
        entry = decide_complete(
            held,
            owner=request.owner,
            now=request.now,
            result=request.result,
            retention_seconds=self._retention,
        )
        self._put(request.key, entry, ClaimStatus.DONE)

    def _put(self, key: str, entry: Entry | None, status: ClaimStatus) -> None:
        if entry is None:
            return
        self._entries[key] = entry
        held = entry.held
        row = (key, held.owner, held.claimed_at, held.lease_until, held.result, entry.expires_at)
        self.claims[key] = (*row, held.called_at, status.value)

    def _remember(self, key: str, message: RememberedMessage, expires_at: float) -> None:
        """messageId -> correlation and key -> messageId, even for a key already done."""
        correlation, message_id = message.correlation, message.message_id
        self.correlations[message_id] = (
            message_id,
            correlation.request_id,
            correlation.request_source,
            correlation.traceparent,
            expires_at,
        )
        self.requests[key] = (key, message_id, expires_at)


def _read_entries(connection: sqlite3.Connection, keys: list[str]) -> dict[str, Entry]:
    """The stored records of ``keys``, expired or not: each request judges them at its time."""
    entries: dict[str, Entry] = {}
    for chunk in _shaped_chunks(keys, width=1):
        sql = _SELECT_CLAIMS.format(", ".join("?" * len(chunk)))
        rows = connection.execute(sql, chunk).fetchall()
        for key, owner, claimed_at, lease_until, result, expires_at, called_at in rows:
            stored = None if result is None else bytes(result)
            held = Held(owner, claimed_at, lease_until, result=stored, called_at=called_at)
            entries[key] = Entry(held, expires_at=expires_at)
    return entries


def _upsert(connection: sqlite3.Connection, sql: str, rows: list[Row]) -> None:
    """Write ``rows`` with as few statements as the parameter limit allows."""
    if not rows:
        return
    width = len(rows[0])
    placeholder = "(" + ", ".join("?" * width) + ")"
    for chunk in _shaped_chunks(rows, width=width):
        values = [value for row in chunk for value in row]
        connection.execute(sql.format(", ".join([placeholder] * len(chunk))), values)


def _shaped_chunks(items: list[T], *, width: int) -> Iterator[list[T]]:
    """``items`` in chunks of a power-of-two length, the last one padded with its last item.

    A statement's text, hence its prepared form, depends on its row count: with a handful of
    counts every shape stays in sqlite3's statement cache (128 statements) instead of being
    parsed anew and evicting the others. Repeats are harmless: a key listed twice in IN, the
    same row upserted twice.
    """
    size = 1 << ((MAX_PARAMETERS // width).bit_length() - 1)
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        shaped = 1 << (len(chunk) - 1).bit_length()
        yield chunk + chunk[-1:] * (shaped - len(chunk))
