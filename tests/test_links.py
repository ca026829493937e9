"""The blackholing proxy itself: what tests of half-open links rely on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.links import LinkProxy


@pytest.fixture
async def echo() -> AsyncIterator[tuple[int, list[bytes]]]:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            received.append(data)
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1]), received
    server.close()


async def test_bytes_flow_both_ways_until_blackholed_and_held_bytes_arrive_on_heal(
    echo: tuple[int, list[bytes]],
) -> None:
    port, received = echo
    async with LinkProxy(port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"one")
        assert await asyncio.wait_for(reader.readexactly(3), 5) == b"one"
        proxy.blackhole()
        writer.write(b"two")
        await writer.drain()
        await asyncio.sleep(0.2)
        assert received == [b"one"]  # nothing crossed, no FIN, no RST
        assert not reader.at_eof()
        proxy.heal()
        assert await asyncio.wait_for(reader.readexactly(3), 5) == b"two"
        writer.close()


async def test_new_links_made_during_a_blackhole_are_silent_too(
    echo: tuple[int, list[bytes]],
) -> None:
    port, received = echo
    async with LinkProxy(port) as proxy:
        proxy.blackhole()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hello")
        await asyncio.sleep(0.2)
        assert received == []
        proxy.heal()
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
        writer.close()


async def test_a_heal_without_resume_keeps_old_links_dead_and_lets_new_ones_flow(
    echo: tuple[int, list[bytes]],
) -> None:
    port, received = echo
    async with LinkProxy(port) as proxy:
        old_reader, old_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.blackhole()
        old_writer.write(b"lost")
        proxy.heal(resume_old=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"new")
        assert await asyncio.wait_for(reader.readexactly(3), 5) == b"new"
        assert received == [b"new"]
        assert not old_reader.at_eof()
        for w in (old_writer, writer):
            w.close()


async def test_a_blackhole_heals_itself_after_its_bound(echo: tuple[int, list[bytes]]) -> None:
    port, _ = echo
    async with LinkProxy(port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.blackhole(max_seconds=0.1)
        writer.write(b"late")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"late"
        assert not proxy.blackholed
        writer.close()


async def test_a_replies_only_blackhole_lets_requests_reach_the_server_but_no_answer_back(
    echo: tuple[int, list[bytes]],
) -> None:
    port, received = echo
    async with LinkProxy(port) as proxy:
        old_reader, old_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.blackhole(replies_only=True)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        old_writer.write(b"applied")
        writer.write(b"also")
        for _ in range(100):
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(received) == [b"also", b"applied"]  # the server got both
        for answers in (old_reader, reader):  # the echoes never come back
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(answers.read(1), 0.2)
        proxy.heal(resume_old=False)
        old_writer.write(b"after")
        await asyncio.sleep(0.2)
        assert b"after" not in received  # a link blackholed for good carries nothing any more
        assert not old_reader.at_eof()
        for w in (old_writer, writer):
            w.close()


def test_only_loopback_targets_are_proxied() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LinkProxy(80, "example.com")
