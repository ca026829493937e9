"""Liveness, readiness and ``/metrics`` of a real relay on the real broker.

Losing the broker is simulated for one relay only: it connects through a TCP proxy on
loopback, and stopping the proxy cuts that relay's connection (a network partition) while the
shared broker other tests use keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.wiring.relay import Relay
from tests.conftest import AMQP_URL, EventTap, Producer, RelayFactory, command


class BrokerProxy:
    """Forwards loopback TCP connections to the broker; ``stop`` cuts them all."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self._url = parts
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        netloc = f"{self._url.username}:{self._url.password}@127.0.0.1:{self.port}"
        return urlunsplit(self._url._replace(netloc=netloc))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        self._writers |= {writer, upstream_writer}
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        sink.transport.abort()


@pytest.fixture
async def proxy() -> AsyncIterator[BrokerProxy]:
    broker_proxy = BrokerProxy(AMQP_URL)
    await broker_proxy.start()
    yield broker_proxy
    await broker_proxy.stop()


async def get(relay: Relay, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{relay.admin_port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def get_json(relay: Relay, path: str) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{relay.admin_port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def readiness_becomes(relay: Relay, status: int, timeout: float = 10) -> Any:
    """Ask /readyz, as an orchestrator would, until it answers ``status``."""
    async with asyncio.timeout(timeout):
        while True:
            answer_status, body = await get_json(relay, "/readyz")
            if answer_status == status:
                return body
            await asyncio.sleep(0.02)


async def ready_gauge(relay: Relay) -> float:
    """``relay_ready`` as Prometheus scrapes it."""
    _, text = await get(relay, "/metrics")
    return samples(text, "relay_ready")


# --- liveness and readiness ---------------------------------------------------------------
async def test_liveness_is_200_while_the_loop_runs(relay: Relay) -> None:
    assert await get_json(relay, "/healthz") == (200, {"status": "ok"})


async def test_relay_ready_is_1_once_consuming_without_anyone_asking_readyz(
    relay: Relay,
) -> None:
    assert await ready_gauge(relay) == 1


async def test_readiness_is_200_with_every_check_when_connected_and_consuming(
    relay: Relay,
) -> None:
    status, body = await get_json(relay, "/readyz")

    assert status == 200
    assert body == {
        "status": "ready",
        "checks": {"broker": True, "consumers": True, "accepting": True, "stateStore": True},
        "warnings": [],
    }


async def test_readiness_is_503_while_the_state_store_does_not_answer(
    relay_factory: RelayFactory,
) -> None:
    # Redis connects lazily, so the relay starts; nothing listens on port 1.
    relay = await relay_factory(relay_state_url="redis://127.0.0.1:1/0")

    status, body = await get_json(relay, "/readyz")

    assert status == 503
    assert body["checks"] == {
        "broker": True,
        "consumers": True,
        "accepting": True,
        "stateStore": False,
    }
    assert await ready_gauge(relay) == 0  # the store as the probe above found it


async def test_readiness_flips_to_503_when_the_broker_is_lost_and_back_to_200_on_reconnect(
    relay_factory: RelayFactory, proxy: BrokerProxy
) -> None:
    relay = await relay_factory(amqp_url=proxy.url)
    assert (await get_json(relay, "/readyz"))[0] == 200

    await proxy.stop()

    body = await readiness_becomes(relay, 503)
    assert body["status"] == "not ready"
    assert body["checks"]["broker"] is False
    assert await ready_gauge(relay) == 0
    assert (await get_json(relay, "/healthz"))[0] == 200  # alive all the same

    await proxy.start()
    await relay.broker.wait_ready(timeout=30)

    status, body = await get_json(relay, "/readyz")
    assert (status, body["status"]) == (200, "ready")
    assert await ready_gauge(relay) == 1


async def test_readiness_is_503_once_draining_for_shutdown(relay: Relay) -> None:
    await relay.drain()

    assert await ready_gauge(relay) == 0  # before any probe: the scrape reads it live
    status, body = await get_json(relay, "/readyz")

    assert status == 503
    assert body["checks"]["accepting"] is False


# --- metrics ------------------------------------------------------------------------------
def samples(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_metrics_are_prometheus_text_and_move_as_commands_flow(
    relay: Relay, producer: Producer, events: EventTap
) -> None:
    status, before = await get(relay, "/metrics")
    assert status == 200
    cmd = command("msgflash.message.send")

    await producer.publish(cmd)
    await events.wait_for(lambda e: e["data"].get("requestId") == cmd["id"])

    _, after = await get(relay, "/metrics")

    def grown(name: str, **labels: str) -> float:
        return samples(after, name, **labels) - samples(before, name, **labels)

    assert grown("relay_commands_total", type="msgflash.message.send", account="default") == 1
    assert grown("relay_events_published_total", routing_key="message.sent") == 1
    assert grown("relay_msgflash_requests_total", status="201") >= 1


async def test_metrics_are_served_with_the_prometheus_text_content_type(relay: Relay) -> None:
    url = f"http://127.0.0.1:{relay.admin_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.content_type == "text/plain"
        assert "version=0.0.4" in response.headers["Content-Type"]
        assert "relay_webhooks_total" in await response.text()
