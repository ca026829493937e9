"""Integration fixtures: relays as real subprocesses (`python -m service.cli run`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.contract.amqp import Topology
from tests.broker_lock import broker_lock
from tests.conftest import AMQP_URL, TEST_RETRY_DELAYS, SandboxHandle


@pytest.fixture(autouse=True)
def broker_in_use(request: pytest.FixtureRequest) -> Iterator[None]:
    """Shared with other suites on the machine; alone for a test that restarts the broker."""
    with broker_lock(exclusive=request.node.get_closest_marker("restarts_broker") is not None):
        yield


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RelayProcess:
    """`msgflash-relay run` in a subprocess, with its output in a file for post-mortems."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = int(env["RELAY_HTTP_PORT"])
        self.admin_port = int(env["RELAY_ADMIN_PORT"])
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "service.cli", "run",
                env={**os.environ, **self.env}, stdout=out, stderr=out,
            )  # fmt: skip
        await self.wait_ready()

    async def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.returncode is None, self.tail()
                url = f"http://127.0.0.1:{self.admin_port}/readyz"
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"relay not ready within {timeout}s:\n{self.tail()}")

    async def metric(self, name: str) -> float:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.admin_port}/metrics") as response,
        ):
            text = await response.text()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    async def metric_sum(self, name: str) -> float:
        """Sum of every labelled sample of ``name`` on /metrics."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.admin_port}/metrics") as response,
        ):
            text = await response.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture
async def relay_processes(
    prefix: str, declared: Topology, sandbox: SandboxHandle, tmp_path: Path
) -> AsyncIterator[Any]:
    started: list[RelayProcess] = []

    def make(**overrides: Any) -> RelayProcess:
        env = {
            "AMQP_URL": AMQP_URL,
            "MSGFLASH_BASE_URL": sandbox.url,
            "MSGFLASH_API_KEY": sandbox.api_key,
            "RELAY_EXCHANGE_PREFIX": prefix,
            "RELAY_HTTP_HOST": "127.0.0.1",
            "RELAY_HTTP_PORT": str(free_port()),
            "RELAY_ADMIN_HOST": "127.0.0.1",
            "RELAY_ADMIN_PORT": str(free_port()),
            "RELAY_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
            "RELAY_RETRY_DELAYS": TEST_RETRY_DELAYS,
            "RELAY_LEASE_SECONDS": "2",
            "RELAY_LOG_LEVEL": "warning",
            "MSGFLASH_RATE_LIMIT": "1000",
        }
        env.update({key.upper(): str(value) for key, value in overrides.items()})
        relay = RelayProcess(env, tmp_path / f"relay-{len(started)}.log")
        started.append(relay)
        return relay

    yield make
    for relay in started:
        await relay.stop()


@contextlib.asynccontextmanager
async def simulator_process(folder: Path, *argv: str) -> AsyncIterator[str]:
    """``msgflash-relay sandbox ARGV`` in a process of its own on a free port; its URL, once it
    answers. For measuring arrival rates, which a busy test event loop would otherwise distort
    by bunching the arrivals it timestamps."""
    port = free_port()
    log = folder / f"sandbox-{port}.log"
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "sandbox", "--port", str(port), *argv,
            stdout=out, stderr=out,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"{url}/_sandbox/requests") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"sandbox did not start:\n{log.read_text(errors='replace')}")
        yield url
    finally:
        process.terminate()
        await process.wait()


@contextlib.asynccontextmanager
async def sandbox_in_process_of_its_own(
    folder: Path, config: dict[str, Any] | None = None
) -> AsyncIterator[SandboxHandle]:
    """The MsgFlash sandbox in a process of its own (rate limit on: 10/s per key, or as
    ``config`` says)."""
    argv = ["--rate-limit", "10", "--step-seconds", "0.05"]
    if config is not None:
        path = folder / f"sandbox-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(config))
        argv = ["--config", str(path)]
    async with simulator_process(folder, *argv) as url, aiohttp.ClientSession() as session:
        yield SandboxHandle(url=url, session=session)


@pytest.fixture
async def sandbox_process(tmp_path: Path) -> AsyncIterator[SandboxHandle]:
    """The sandbox in a process of its own, limiting its one key to 10 requests/s."""
    async with sandbox_in_process_of_its_own(tmp_path) as sandbox:
        yield sandbox
