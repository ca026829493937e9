"""The SQLite checkpointer: copies the WAL back into the database file, on a thread of its own.

The checkpoint is the one step of SQLite's WAL mode that fsyncs, so it must not run on the
event loop, where the writer's connection has automatic checkpoints turned off. Each round is
one statement, during which sqlite3 lets the GIL go: the thread costs the loop nothing.

A passive checkpoint never holds writers up, but under steady writes the WAL can only restart
from its beginning once a checkpoint has caught up with it. When it has grown past
RESTART_FRAMES anyway, a restarting checkpoint holds writers for as long as it takes (the
writer retries meanwhile), which bounds the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("service.state.sqlite_checkpoint")

# Often enough that the WAL stays a few MB under full load.
CHECKPOINT_INTERVAL_SECONDS = 1.0
# 16,384 pages of 4 KB: 64 MB.
RESTART_FRAMES = 16_384


class Checkpointer:
    """Owns one connection on a thread that checkpoints every CHECKPOINT_INTERVAL_SECONDS.

    On ``close`` it runs a last, truncating checkpoint, so a cleanly stopped relay leaves the
    database file whole and the WAL empty.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        loop: asyncio.AbstractEventLoop,
        *,
        interval: float,
        thread_name: str,
    ) -> None:
        self._connect = connect
        self._loop = loop
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=thread_name)
        self._started: asyncio.Future[None] = loop.create_future()
        self.failure: sqlite3.Error | None = None  # the last round's, None once one succeeds
        self.rounds = 0  # checkpoints run; read for observability and tests

    @classmethod
    async def start(
        cls,
        connect: Callable[[], sqlite3.Connection],
        *,
        interval: float = CHECKPOINT_INTERVAL_SECONDS,
        thread_name: str = "relay-sqlite-checkpoint",
    ) -> Checkpointer:
        """Run ``connect`` on the new thread; raises what it raises, leaving no thread behind."""
        loop = asyncio.get_running_loop()
        checkpointer = cls(connect, loop, interval=interval, thread_name=thread_name)
        checkpointer._thread.start()
        try:
            await checkpointer._started
        except BaseException:
            await checkpointer.close()
            raise
        return checkpointer

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    async def close(self) -> None:
        """Stop after a last, truncating checkpoint; the connection closes on its thread."""
        self._stop.set()
        if self._thread.ident is not None:
            await asyncio.to_thread(self._thread.join)

    # --- on the checkpoint thread ----------------------------------------------------------

    def _main(self) -> None:
        try:
            connection = self._connect()
        except Exception as exc:
            self._tell_started(exc)
            return
        try:
            if not self._tell_started(None):
                return
            # The thread is not a daemon: it also stops once the loop is gone, so a store that
            # nobody closed does not keep the process from exiting.
            while not self._stop.wait(self._interval) and not self._loop.is_closed():
                self._checkpoint(connection)
            self._checkpoint(connection, mode="TRUNCATE")
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection, mode: str = "PASSIVE") -> None:
        try:
            _, wal_frames, _ = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            if mode == "PASSIVE" and wal_frames >= RESTART_FRAMES:
                connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error as exc:  # the next round tries again; ping() reports it meanwhile
            if self.failure is None:
                log.error("sqlite_checkpoint_failed", mode=mode, error=str(exc))
            self.failure = exc
        else:
            if self.failure is not None:
                log.info("sqlite_checkpoint_recovered", mode=mode)
            self.failure = None
        self.rounds += 1

    def _tell_started(self, error: Exception | None) -> bool:
        """False when the loop is gone (nobody waits for this thread any more)."""
        try:
            self._loop.call_soon_threadsafe(_settle_started, self._started, error)
        except RuntimeError:
            return False
        return True


def _settle_started(started: asyncio.Future[None], error: Exception | None) -> None:
    if started.done():
        return
    if error is None:
        started.set_result(None)
    else:
        started.set_exception(error)
