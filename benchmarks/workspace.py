"""One benchmark run's private namespace: AMQP prefixes, Redis key prefixes and a scratch folder.

Everything a run creates is named after its own random tag and removed again when it ends:
exchanges and queues with ``delete_topology``, Redis keys by ``SCAN`` (never a flush, since
the broker and Redis are shared with other work on the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from service.bus.topology import delete_topology
from service.contract.amqp import Topology

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The relay's deferred-retry tiers (its defaults): declared, and deleted afterwards, per prefix.
RETRY_DELAYS = (10.0, 60.0, 600.0, 3600.0)
# The broker is shared: another job may restart it while a run ends. Cleanup waits this long.
CLEANUP_PATIENCE_SECONDS = 60.0


class CleanupIncomplete(RuntimeError):
    """Some of the run's exchanges and queues could not be deleted; the message names them."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the real broker and Redis are: ``AMQP_URL`` and ``BENCH_REDIS_URL`` override."""

    amqp_url: str
    redis_url: str

    @classmethod
    def from_environment(cls) -> Endpoints:
        return cls(
            amqp_url=os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL,
            redis_url=os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL,
        )


@dataclass
class Workspace:
    """Hands out unique names and remembers them so ``close`` can delete what they named."""

    endpoints: Endpoints
    folder: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _topologies: list[Topology] = field(default_factory=list)
    _queues: list[str] = field(default_factory=list)
    _redis_prefixes: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, endpoints: Endpoints) -> Workspace:
        return cls(endpoints, Path(tempfile.mkdtemp(prefix="msgflash-bench-")))

    def topology(self, label: str) -> Topology:
        """A fresh exchange prefix for one measurement, e.g. ``bench-1a2b3c4d-3-relay``."""
        prefix = f"bench-{self.tag}-{next(self._counter)}-{label}"
        topology = Topology(prefix=prefix, retry_delays=RETRY_DELAYS)
        self._topologies.append(topology)
        return topology

    def extra_queue(self, name: str) -> str:
        """A queue outside the relay's topology (a result tap) to delete afterwards."""
        self._queues.append(name)
        return name

    def redis_state_url(self, topology: Topology) -> str:
        """The relay's ``RELAY_STATE_URL`` for Redis, its keys under the topology's prefix."""
        self._redis_prefixes.append(topology.prefix)
        separator = "&" if "?" in self.endpoints.redis_url else "?"
        return f"{self.endpoints.redis_url}{separator}prefix={topology.prefix}"

    def sqlite_state_url(self, name: str) -> str:
        return f"sqlite:///{self.folder / name}.db"

    def path(self, name: str) -> Path:
        return self.folder / name

    async def connect(self) -> AbstractConnection:
        return await aio_pika.connect(self.endpoints.amqp_url, timeout=10)

    async def close(self) -> None:
        """Delete every queue, exchange and Redis key this run created, then the folder.

        A broker that is away (restarted by another job) is retried for a while; if it stays
        away, ``CleanupIncomplete`` names the prefixes left behind, once the rest is done.
        """
        amqp_error = await self._delete_amqp_objects_patiently()
        if self._redis_prefixes:
            await delete_redis_keys(self.endpoints.redis_url, self._redis_prefixes)
        with contextlib.suppress(OSError):
            shutil.rmtree(self.folder)
        if amqp_error is not None:
            prefixes = ", ".join(topology.prefix for topology in self._topologies)
            raise CleanupIncomplete(
                f"the broker stayed unreachable ({amqp_error}); delete the exchanges and queues "
                f"of these prefixes by hand: {prefixes}"
            )

    async def _delete_amqp_objects_patiently(self) -> Exception | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLEANUP_PATIENCE_SECONDS
        while True:
            try:
                await self._delete_amqp_objects()
                return None
            except (OSError, aio_pika.exceptions.AMQPError) as exc:
                if loop.time() > deadline:
                    return exc
                await asyncio.sleep(2)

    async def _delete_amqp_objects(self) -> None:
        connection = await self.connect()
        try:
            channel = await connection.channel()
            for queue in self._queues:
                await channel.queue_delete(queue)
            await channel.close()
            for topology in self._topologies:
                await delete_topology(connection, topology)
        finally:
            await connection.close()


async def delete_redis_keys(url: str, prefixes: list[str]) -> int:
    """Delete ``<prefix>:*`` keys by SCAN, batch by batch; returns how many went."""
    client = Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
    deleted = 0
    try:
        for prefix in prefixes:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += await client.delete(*batch)
                    batch = []
            if batch:
                deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted
