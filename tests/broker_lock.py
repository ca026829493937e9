"""One RabbitMQ, several suites: the test that restarts the broker runs alone on the machine.

Every integration test holds a shared lock on one file in the system's temporary folder while
it runs; a test marked ``restarts_broker`` holds it exclusively. Two ``make test`` runs on one
machine (two checkouts, or CI beside a developer) then interleave freely, except that no test
of either is connected to the broker while the other stops and starts it.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = Path(tempfile.gettempdir()) / "msgflash-relay-tests.broker.lock"


@contextmanager
def broker_lock(*, exclusive: bool, path: Path = LOCK_FILE) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
