"""Every shell command of the README's first sections runs as written against a relay started
the way ``make run`` starts it (on this test's own exchange prefix and ports).

A block runs as one bash script and must exit 0, unless a ``<!-- docs-test: MODE -->`` line
right above it says otherwise: ``skip`` (it starts a relay or the suite itself) or ``serve``
(each line is a server: it must print its banner, then stop cleanly on SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aio_pika.abc import AbstractConnection

from service.bus.topology import delete_topology
from service.contract.amqp import Topology
from tests.conftest import AMQP_URL
from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("## Quick start", "## Using it", "## The MsgFlash sandbox")
BLOCK = re.compile(r"(?:<!-- docs-test: (\w+)[^>]*-->\n)?```sh\n(.*?)```", re.S)
BANNER = "listening on"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    section: str
    mode: str
    script: str


def readme_blocks() -> list[Block]:
    text = (ROOT / "README.md").read_text()
    blocks = []
    for heading in SECTIONS:
        body = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
        blocks += [Block(heading, m[1] or "run", m[2]) for m in BLOCK.finditer(body)]
    return blocks


def command_env(prefix: str) -> dict[str, str]:
    """A second terminal's environment: no relay settings but the prefix, the CLI on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSGFLASH_", "RELAY_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | {"AMQP_URL": AMQP_URL, "RELAY_EXCHANGE_PREFIX": prefix}


@pytest.fixture
async def make_run(
    prefix: str, amqp: AbstractConnection, tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``make run``'s relay (embedded sandboxes, demo, console logs), on this test's names and
    free ports, so a ``make run`` or another suite on this machine is left alone."""
    log = tmp_path / "relay.log"
    env = command_env(prefix) | {
        "RELAY_SANDBOX": "1",
        "RELAY_LOG_FORMAT": "console",
        "RELAY_HTTP_PORT": str(free_port()),
        "RELAY_ADMIN_PORT": str(free_port()),
        "RELAY_SANDBOX_PORT": str(free_port()),
        "RELAY_TETHER_SANDBOX_PORT": str(free_port()),
        "RELAY_STATE_URL": f"sqlite:///{tmp_path / 'relay-state.db'}",
    }
    with log.open("ab") as out:
        relay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "run", "--demo",
            env=env, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            while "relay_started" not in log.read_text(errors="replace"):
                assert relay.returncode is None, log.read_text(errors="replace")
                await asyncio.sleep(0.1)
        yield relay
    finally:
        relay.terminate()
        await relay.wait()
        await delete_topology(amqp, Topology(prefix=prefix))


def test_the_sections_hold_commands_to_run() -> None:
    modes = {(block.section, block.mode) for block in readme_blocks()}
    assert ("## Using it", "run") in modes and ("## The MsgFlash sandbox", "serve") in modes


async def test_every_readme_command_runs_against_make_runs_relay(
    make_run: asyncio.subprocess.Process, prefix: str
) -> None:
    for block in readme_blocks():
        if block.mode == "run":
            await run_block(block, command_env(prefix))
        elif block.mode == "serve":
            for line in block.script.strip().splitlines():
                await serve_line(line, command_env(prefix))
        else:
            assert block.mode == "skip", f"unknown docs-test mode {block.mode!r}"


async def run_block(block: Block, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", block.script,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, f"{block.script}\nstdout:\n{out.decode()}\n{err.decode()}"


async def serve_line(line: str, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", f"exec {line}",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        first = await asyncio.wait_for(process.stdout.readline(), 60)
        assert BANNER in first.decode(), f"{line}\n{first.decode()}"
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, f"{line}\n{err.decode()}"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
