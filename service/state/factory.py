"""Opens the state store that ``RELAY_STATE_URL`` names; the one place that knows the URL forms."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from service.contract.errors import ConfigError
from service.state.memory import MemoryStateStore
from service.state.redis import DEFAULT_KEY_PREFIX, RedisStateStore, redis_from_state_url
from service.state.sqlite import SqliteStateStore
from service.state.store import StateStore

ACCEPTED_FORMS = (
    "sqlite:///relay-state.db (path relative to the working directory), "
    "sqlite:////data/relay-state.db (absolute path), "
    "redis://HOST:PORT/DB (optionally ?prefix=NAME) or memory://"
)


def build_state_store(
    url: str,
    *,
    retention_seconds: float,
    clock: Callable[[], float] = time.time,
    key_prefix: str | None = None,
    saturated: Callable[[], bool] | None = None,
) -> StateStore:
    """The store for ``url``, not yet opened (no I/O): ``open()`` it, then ``close()`` it.

    ``key_prefix`` namespaces Redis keys; a ``?prefix=`` in the URL wins over it, and
    ``msgflash-relay`` is used when neither is given. SQLite batches its commits more widely
    while ``saturated()`` says the relay is behind.
    """
    scheme = urlsplit(url).scheme
    if url == "memory://":
        return MemoryStateStore(retention_seconds=retention_seconds, clock=clock)
    if scheme == "sqlite":
        return SqliteStateStore(
            sqlite_path(url), retention_seconds=retention_seconds, clock=clock, saturated=saturated
        )
    if scheme in ("redis", "rediss"):
        client, url_prefix = redis_from_state_url(url)
        prefix = url_prefix or key_prefix or DEFAULT_KEY_PREFIX
        return RedisStateStore(
            client, prefix=prefix, retention_seconds=retention_seconds, clock=clock
        )
    raise ConfigError(f"RELAY_STATE_URL: unsupported store {url!r}; use {ACCEPTED_FORMS}")


async def open_store(store: StateStore, url: str) -> None:
    """Open ``store`` (built from ``url``), naming the setting when the file cannot be opened."""
    try:
        await store.open()
    except sqlite3.Error as exc:
        path = sqlite_path(url)
        raise ConfigError(f"RELAY_STATE_URL: cannot open SQLite file {path!r}: {exc}") from None


async def open_state_store(
    url: str,
    *,
    retention_seconds: float,
    clock: Callable[[], float] = time.time,
    key_prefix: str | None = None,
    saturated: Callable[[], bool] | None = None,
) -> StateStore:
    """Build and open in one step (tools and tests); the caller must ``close()`` it."""
    store = build_state_store(
        url,
        retention_seconds=retention_seconds,
        clock=clock,
        key_prefix=key_prefix,
        saturated=saturated,
    )
    await open_store(store, url)
    return store


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///PATH`` URL; its directory must already exist."""
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        raise ConfigError(f"RELAY_STATE_URL: {url!r} names no SQLite file; use {ACCEPTED_FORMS}")
    path = url.removeprefix("sqlite:///")
    directory = Path(path).parent
    if not directory.is_dir():
        raise ConfigError(
            f"RELAY_STATE_URL: the directory {str(directory)!r} of {url!r} does not exist; "
            "create it or point the URL at an existing directory"
        )
    if Path(path).is_dir():
        # Refused here with advice: sqlite3 itself only says "unable to open database file".
        raise ConfigError(
            f"RELAY_STATE_URL: cannot open SQLite file {path!r}: it is a directory; "
            "name a file inside it, e.g. sqlite:///" + str(Path(path) / "relay-state.db")
        )
    return path
