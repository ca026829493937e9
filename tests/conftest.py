"""Shared fixtures: real RabbitMQ with per-test names, the real sandbox, a relay wired to both.

Every test gets its own exchange prefix, so all of its exchanges and queues are unique; they are
deleted afterwards. Nothing here mocks the broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aio_pika
import aiohttp
import pytest
import structlog
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from aiohttp.test_utils import TestServer
from structlog.typing import EventDict

from service.bus.topology import declare_topology, delete_topology
from service.contract.amqp import Topology
from service.settings import DEFAULT_SANDBOX_API_KEY, load_settings

if TYPE_CHECKING:  # imported lazily so the sandbox and unit suites load without the relay
    from service.tracing.spans import Tracing
    from service.wiring.relay import Relay

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_RETRY_DELAYS = "0.2,0.4"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def amqp() -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    yield connection
    await connection.close()


@pytest.fixture
async def topology(prefix: str, amqp: AbstractConnection) -> AsyncIterator[Topology]:
    topo = Topology(
        prefix=prefix, retry_delays=tuple(float(d) for d in TEST_RETRY_DELAYS.split(","))
    )
    yield topo
    await delete_topology(amqp, topo)


@pytest.fixture
async def declared(amqp: AbstractConnection, topology: Topology) -> Topology:
    """The topology declared up front, so taps and producers can bind before a relay starts."""
    await declare_topology(amqp, topology)
    return topology


@dataclass
class SandboxHandle:
    """The running sandbox and its admin routes."""

    url: str
    session: aiohttp.ClientSession
    api_key: str = DEFAULT_SANDBOX_API_KEY

    async def set_faults(self, **faults: Any) -> None:
        async with self.session.put(f"{self.url}/_sandbox/faults", json=faults) as response:
            assert response.status == 200, await response.text()

    async def clear_faults(self) -> None:
        async with self.session.delete(f"{self.url}/_sandbox/faults") as response:
            assert response.status in (200, 204), await response.text()

    async def requests(
        self, path: str = "/api/v1/", method: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"path": path, **({"method": method} if method else {})}
        async with self.session.get(f"{self.url}/_sandbox/requests", params=params) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
        records: list[dict[str, Any]] = body["data"]
        return records

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.url}{path}", json=body) as response:
            assert response.status < 300, await response.text()
            return await response.json() if response.content_length != 0 else None

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"x-api-key": self.api_key}
        async with self.session.request(
            method, f"{self.url}{path}", json=body, headers=headers
        ) as response:
            return response.status, await response.json()


# The suite's sandbox: no rate limit, a fast lifecycle and fast webhook retries.
SANDBOX_CONFIG: dict[str, Any] = {
    "rate_limit_per_second": None,
    "lifecycle_step_seconds": 0.05,
    "webhook_retry_base_seconds": 0.05,
}


@pytest.fixture
def sandbox_config() -> dict[str, Any]:
    """Override per test (e.g. rate limit on) by parametrizing this fixture."""
    return dict(SANDBOX_CONFIG)


@pytest.fixture
async def sandbox(sandbox_config: dict[str, Any]) -> AsyncIterator[SandboxHandle]:
    from service.providers.msgflash.sandbox.app import create_sandbox_app
    from service.providers.msgflash.sandbox.config import SandboxConfig

    server = TestServer(create_sandbox_app(SandboxConfig(**sandbox_config)), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield SandboxHandle(url=str(server.make_url("")).rstrip("/"), session=session)
    await server.close()


RelayFactory = Callable[..., Awaitable["Relay"]]


@pytest.fixture
async def relay_factory(
    prefix: str, topology: Topology, sandbox: SandboxHandle, amqp: AbstractConnection
) -> AsyncIterator[RelayFactory]:
    """Start relays on this test's prefix, pointed at the sandbox; all stopped afterwards, and
    what each declared beyond the test's own topology (accounts' queues, other retry tiers)
    deleted."""
    from service.accounts import load_accounts
    from service.app import build

    started: list[Relay] = []

    async def start(tracing: Tracing | None = None, **overrides: Any) -> Relay:
        env = {
            "AMQP_URL": AMQP_URL,
            "MSGFLASH_BASE_URL": sandbox.url,
            "MSGFLASH_API_KEY": sandbox.api_key,
            "RELAY_EXCHANGE_PREFIX": prefix,
            "RELAY_HTTP_HOST": "127.0.0.1",
            "RELAY_HTTP_PORT": "0",
            "RELAY_ADMIN_HOST": "127.0.0.1",
            "RELAY_ADMIN_PORT": "0",
            "RELAY_STATE_URL": "memory://",
            "RELAY_RETRY_DELAYS": TEST_RETRY_DELAYS,
            "RELAY_MSGFLASH_TIMEOUT": "5",
            "RELAY_INSTANCE_CACHE_TTL": "0",
            "RELAY_DRAIN_SECONDS": "5",
        }
        env.update({key.upper(): str(value) for key, value in overrides.items()})
        settings = load_settings(env)
        relay = build(settings, load_accounts(settings, env), tracing)
        await relay.start(wait_for_broker=30)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        if not relay.draining:
            await relay.drain()
        await relay.stop()
    for relay in started:
        await delete_topology(amqp, relay.topology)


@pytest.fixture
async def relay(relay_factory: RelayFactory) -> Relay:
    return await relay_factory()


@dataclass
class EventTap:
    """A private queue bound to the events exchange: what producers would see."""

    queue: aio_pika.abc.AbstractQueue
    events: list[dict[str, Any]] = field(default_factory=list)
    messages: list[AbstractIncomingMessage] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        async with self._changed:
            self.events.append(json.loads(message.body))
            self.messages.append(message)
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, count: int = 1, timeout: float = 15
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` events match; returns them. Fails with what was seen instead."""

        def matching() -> list[dict[str, Any]]:
            return [e for e in self.events if predicate(e)]

        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(matching()) >= count), timeout
                )
            except TimeoutError:
                seen = [(e.get("type"), e.get("data", {}).get("requestId")) for e in self.events]
                pytest.fail(
                    f"waited {timeout}s for {count} matching events, {len(matching())} came; "
                    f"{len(seen)} events in all, the last: {seen[-10:]}"
                )
        return matching()

    def of_request(self, request_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("data", {}).get("requestId") == request_id]


@pytest.fixture
async def events(amqp: AbstractConnection, declared: Topology) -> AsyncIterator[EventTap]:
    channel = await amqp.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(declared.events_exchange, routing_key="#")
    tap = EventTap(queue)
    await queue.consume(tap._on_message)
    yield tap
    await channel.close()


def command(
    type_: str = "msgflash.message.send",
    data: Mapping[str, Any] | None = None,
    *,
    command_id: str | None = None,
    source: str = "tests",
) -> dict[str, Any]:
    from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN

    return {
        "specversion": "1.0",
        "id": command_id or str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "data": dict(
            data
            if data is not None
            else {
                "instanceId": INSTANCE_MAIN,
                "to": "+33612345678",
                "message": {"type": "text", "text": "Hello"},
            }
        ),
    }


RESULT_TYPES = ("msgflash.message.sent", "msgflash.message.failed")


def text_command(text: str, **kwargs: Any) -> dict[str, Any]:
    """A send command to the seeded main instance whose text identifies it in the sandbox log."""
    from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN

    data = {
        "instanceId": INSTANCE_MAIN,
        "to": "+33612345678",
        "message": {"type": "text", "text": text},
    }
    return command(data=data, **kwargs)


async def sends_by_text(sandbox: SandboxHandle) -> Counter[str]:
    """How many times MsgFlash accepted each text: the exactly-once check."""
    records = await sandbox.requests("/api/v1/messages/send", method="POST")
    return Counter(r["body"]["text"] for r in records if r["status"] == 201)


class RelayLog:
    """The relay's log entries as it writes them (its bound context merged in)."""

    def __init__(self) -> None:
        self.entries: list[EventDict] = []
        self._handled = 0
        self._changed = asyncio.Event()

    def spot(self, _logger: object, _method: str, entry: EventDict) -> EventDict:
        if entry["event"] == "command_handled":
            self._handled += 1
            self._changed.set()
        return entry

    async def wait_handled(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Until ``count`` commands have had their ``command_handled`` outcome line."""
        async with asyncio.timeout(timeout):
            while self._handled < count:
                self._changed.clear()
                await self._changed.wait()

    def named(self, event: str) -> list[EventDict]:
        return [entry for entry in self.entries if entry["event"] == event]


@contextmanager
def relay_log() -> Iterator[RelayLog]:
    log = RelayLog()
    processors = [structlog.contextvars.merge_contextvars, log.spot]
    with structlog.testing.capture_logs(processors) as entries:
        log.entries = entries
        yield log


@dataclass
class Producer:
    """Publishes commands the way a producer service would."""

    channel: aio_pika.abc.AbstractChannel
    topology: Topology

    async def publish(
        self,
        body: Mapping[str, Any] | bytes,
        routing_key: str | None = None,
        **properties: Any,
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if routing_key is None:
            assert not isinstance(body, bytes)
            routing_key = str(body["type"]).removeprefix("msgflash.")
        properties.setdefault("content_type", "application/cloudevents+json")
        exchange = await self.channel.get_exchange(self.topology.commands_exchange)
        await exchange.publish(
            aio_pika.Message(raw, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties),
            routing_key,
        )


@pytest.fixture
async def producer(amqp: AbstractConnection, declared: Topology) -> AsyncIterator[Producer]:
    channel = await amqp.channel(publisher_confirms=True)
    yield Producer(channel, declared)
    await channel.close()


async def dead_letters(
    amqp: AbstractConnection, topology: Topology, *, expect: int, timeout: float = 10
) -> list[AbstractIncomingMessage]:
    """Read (and ack) ``expect`` messages from the dead-letter queue."""
    channel = await amqp.channel()
    queue = await channel.get_queue(topology.dead_letter_queue)
    found: list[AbstractIncomingMessage] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(found) < expect and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        found.append(message)
    await channel.close()
    return found
