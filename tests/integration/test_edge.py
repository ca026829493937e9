"""The public port as an attacker on the network sees it: what it serves, what it says about
itself, and how long it lets a slow or greedy client hold it; the admin port holds out against
slow and greedy clients too. Real relay, loopback sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog

from service.wiring.relay import Relay
from tests.conftest import RelayFactory, SandboxHandle

HEADER_TIMEOUT = 1
BODY_TIMEOUT = 1
MAX_CONNECTIONS = 3
# Generous: the relay must cut a slow client long before this, on a busy machine too.
CUT_WITHIN = 20
# Each port and a path it serves.
PORTS = {"http_port": "/openapi.json", "admin_port": "/healthz"}


@pytest.fixture
async def relay(relay_factory: RelayFactory) -> Relay:
    return await relay_factory(
        relay_http_header_timeout=HEADER_TIMEOUT,
        relay_http_body_timeout=BODY_TIMEOUT,
        relay_http_max_connections=MAX_CONNECTIONS,
        msgflash_webhook_secret="whsec-edge-0123456789",
        relay_ingress_tokens="ingress-edge-0123456789",
    )


async def status_and_headers(port: int, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Server", "")


@contextlib.asynccontextmanager
async def raw_connection(
    port: int,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (bounded wait)."""
    async with asyncio.timeout(CUT_WITHIN):
        with contextlib.suppress(ConnectionError):
            return await reader.read()
    return b""


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` a byte at a time, slowly, as a slowloris client does, until cut off."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)


# --- what is served where -----------------------------------------------------------------
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_probes_and_metrics_are_not_on_the_public_port(relay: Relay, path: str) -> None:
    assert (await status_and_headers(relay.http_port, path))[0] == 404
    assert (await status_and_headers(relay.admin_port, path))[0] == 200


@pytest.mark.parametrize("path", ["/webhooks/msgflash", "/v1/commands", "/openapi.json"])
async def test_the_admin_port_serves_nothing_of_the_public_one(relay: Relay, path: str) -> None:
    assert (await status_and_headers(relay.admin_port, path))[0] in (404, 405)


async def test_metrics_carry_no_part_of_the_api_key(relay: Relay, sandbox: SandboxHandle) -> None:
    url = f"http://127.0.0.1:{relay.admin_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    assert 'relay_quota_gate_closed{account="default"} 0.0' in text
    assert sandbox.api_key[-6:] not in text
    assert "msgf_" not in text


# --- what the server says about itself ----------------------------------------------------
@pytest.mark.parametrize("path", ["/openapi.json", "/nothing-here", "/v1/commands"])
async def test_no_response_names_the_server_software_or_its_version(
    relay: Relay, path: str
) -> None:
    _, server = await status_and_headers(relay.http_port, path)
    assert server == "msgflash-relay"
    assert (await status_and_headers(relay.admin_port, "/healthz"))[1] == "msgflash-relay"


async def test_a_malformed_request_is_refused_without_naming_the_server_software(
    relay: Relay,
) -> None:
    async with raw_connection(relay.http_port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\x01: Bearer tok\r\n\r\n")
        answer = await closed_by_server(reader)
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    assert b"aiohttp" not in answer.lower() and b"python" not in answer.lower()


# Headers a client garbled with a control character, each around a token the relay does not
# know (so no configured secret can be scrubbed by name).
GARBLED = [
    b"Authorization: Bearer other-tok\x01en-456",
    b"Authorization: Token\x01unknown-tok-789",
]
TOKEN_PARTS = ("other-tok", "en-456", "unknown-tok-789")


@pytest.mark.parametrize("header", GARBLED)
async def test_a_malformed_header_is_answered_and_logged_without_a_trace_of_it(
    relay: Relay, header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with raw_connection(relay.http_port) as (reader, writer):
            writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
            answer = await closed_by_server(reader)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    assert body == b"400 Bad Request\n"
    [line] = [entry for entry in logs if entry["event"] == "http_request_malformed"]
    assert line["log_level"] == "info" and "exc_info" not in line
    assert (line["client"], line["error"]) == ("127.0.0.1", "BadHttpMessage")
    everything = f"{answer!r} {logs!r} {caplog.text}"
    assert not [part for part in TOKEN_PARTS if part in everything]
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]


async def test_a_flood_of_malformed_requests_is_logged_at_most_once_a_second(
    relay: Relay,
) -> None:
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        for _ in range(20):
            async with raw_connection(relay.http_port) as (reader, writer):
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n" + GARBLED[0] + b"\r\n\r\n")
                answer = await closed_by_server(reader)
                assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    seconds = time.monotonic() - started

    lines = [entry for entry in logs if entry["event"] == "http_request_malformed"]
    assert 1 <= len(lines) <= 1 + int(seconds)


# --- slow and greedy clients --------------------------------------------------------------
@pytest.mark.parametrize("port", PORTS)
async def test_a_client_that_trickles_its_headers_is_cut_off(relay: Relay, port: str) -> None:
    async with raw_connection(getattr(relay, port)) as (reader, writer):
        writer.write(f"GET {PORTS[port]} HTTP/1.1\r\nHost: x\r\n".encode())
        slow = asyncio.create_task(trickle(writer, b"X-Slow: " + b"a" * 500))
        answer = await closed_by_server(reader)
        slow.cancel()
    assert not answer.startswith(b"HTTP/1.1 2")
    assert not slow.done() or slow.cancelled()


@pytest.mark.parametrize("port", PORTS)
async def test_a_client_that_never_sends_a_byte_is_cut_off(relay: Relay, port: str) -> None:
    async with raw_connection(getattr(relay, port)) as (reader, _writer):
        assert await closed_by_server(reader) == b""


async def test_a_kept_alive_connection_that_trickles_its_next_request_is_cut_off(
    relay: Relay,
) -> None:
    async with raw_connection(relay.http_port) as (reader, writer):
        writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        slow = asyncio.create_task(trickle(writer, b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n"))
        await closed_by_server(reader)
        slow.cancel()


async def test_a_client_that_trickles_its_body_is_answered_408(relay: Relay) -> None:
    async with raw_connection(relay.http_port) as (reader, writer):
        writer.write(
            b"POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
            b"Authorization: Bearer ingress-edge-0123456789\r\n"
            b"Content-Type: application/json\r\n\r\n"
        )
        slow = asyncio.create_task(trickle(writer, b"{" + b" " * 499))
        answer = await closed_by_server(reader)
        slow.cancel()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"RELAY_HTTP_BODY_TIMEOUT" in answer


@pytest.mark.parametrize("port", PORTS)
async def test_connections_beyond_the_bound_are_closed_and_the_port_recovers(
    relay: Relay, port: str
) -> None:
    number, path = getattr(relay, port), PORTS[port]
    held = [await asyncio.open_connection("127.0.0.1", number) for _ in range(MAX_CONNECTIONS)]
    try:
        async with raw_connection(number) as (reader, writer):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert await closed_by_server(reader) == b""
    finally:
        for _, writer in held:
            writer.close()
    for _attempt in range(CUT_WITHIN * 20):  # the closed ones are counted out, then it serves
        if await status_or_none(number, path) == 200:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the port did not serve again once the held connections were closed")


async def status_or_none(port: int, path: str) -> int | None:
    try:
        return (await status_and_headers(port, path))[0]
    except aiohttp.ClientError:
        return None
