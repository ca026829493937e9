"""Every shell command of the README's first sections runs as written against a relay started
the way ``make run`` starts it (on this test's own exchange prefix and ports).

The blocks run in order in one bash session from the repository root, as a user pastes them
into a second terminal: nothing but the README's own ``. .venv/bin/activate`` puts the CLI on
``PATH``. A ``<!-- docs-test: MODE -->`` line right above a block changes how it runs: ``skip``
(it starts a relay or needs what a test machine lacks; the reason follows) or ``serve`` (each
line is a server: it must print its banner, then stop cleanly on SIGTERM). Every ``sh`` block
outside those sections says why it is skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
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
SECTIONS = (
    "## Quick start",
    "## Using it",
    "## The MsgFlash sandbox",
    "## Tether, the second provider",
)
BLOCK = re.compile(r"(?:<!-- docs-test: (\w+)[^>]*-->\n)?```sh\n(.*?)```", re.S)
BANNER = "listening on"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    section: str
    mode: str
    script: str


def readme_blocks(*, tested: bool = True) -> list[Block]:
    """The ``sh`` blocks of the tested sections, in order (``tested=False``: of the others)."""
    text = (ROOT / "README.md").read_text()
    blocks = []
    for part in text.split("\n## ")[1:]:
        heading, _, body = f"## {part}".partition("\n")
        if (heading in SECTIONS) == tested:
            blocks += [Block(heading, m[1] or "run", m[2]) for m in BLOCK.finditer(body)]
    return blocks


def command_env(prefix: str) -> dict[str, str]:
    """A second terminal's environment: no relay settings but the prefix, and no virtualenv
    on ``PATH``, even the one running this test, so the README's activate line must work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSGFLASH_", "RELAY_"))}
    env.pop("VIRTUAL_ENV", None)
    venvs = {os.path.abspath(ROOT / ".venv" / "bin"), os.path.dirname(sys.executable)}
    path = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(d for d in path if os.path.abspath(d) not in venvs)
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
    assert ("## Tether, the second provider", "run") in modes


def test_every_other_shell_block_says_why_it_is_not_run() -> None:
    unmarked = [b for b in readme_blocks(tested=False) if b.mode != "skip"]
    assert unmarked == [], "add the section to SECTIONS, or a `docs-test: skip (why)` line"


async def test_every_readme_command_runs_against_make_runs_relay(
    make_run: asyncio.subprocess.Process, prefix: str, tmp_path: Path
) -> None:
    session = await asyncio.create_subprocess_exec(
        "bash", "-c", session_script(readme_blocks(), tmp_path),
        cwd=ROOT, env=command_env(prefix),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(session.communicate(), 300)
    transcript = out.decode(errors="replace").splitlines()
    assert session.returncode == 0, "\n".join(transcript[-60:])


# The session: each README command is traced (``+ msgflash-relay ...``) before its output, and
# the first to fail stops it with a line saying which, and how.
PREAMBLE = r"""
set -euo pipefail
trap 'echo "docs-test: exit $? from: $BASH_COMMAND" >&2' ERR
# A README server ($3): its pid and its output. It must print its banner, then exit 0 on SIGTERM.
docs_test_serve() {
  { set +x; } 2>/dev/null
  local _
  for _ in $(seq 600); do
    if grep -q "$DOCS_TEST_BANNER" "$2"; then
      kill -TERM "$1"
      if wait "$1"; then set -x; return 0; fi
      cat "$2"; echo "docs-test: did not stop cleanly on SIGTERM: $3"; exit 1
    fi
    if ! kill -0 "$1" 2>/dev/null; then
      cat "$2"; echo "docs-test: exited before its banner: $3"; exit 1
    fi
    sleep 0.1
  done
  kill -KILL "$1"; cat "$2"; echo "docs-test: no banner within 60 s: $3"; exit 1
}
set -x
"""


def session_script(blocks: list[Block], logs: Path) -> str:
    lines = [f"DOCS_TEST_BANNER={shlex.quote(BANNER)}", PREAMBLE]
    for number, block in enumerate(blocks, 1):
        lines.append(f": {shlex.quote(f'README {block.section}, block {number}: {block.mode}')}")
        if block.mode == "run":
            lines.append(block.script)
        elif block.mode == "serve":
            for index, line in enumerate(block.script.strip().splitlines()):
                lines.append(serve_line(line, logs / f"serve-{number}-{index}.log"))
        else:
            assert block.mode == "skip", f"unknown docs-test mode {block.mode!r}"
    return "\n".join(lines) + "\n"


def serve_line(line: str, log: Path) -> str:
    """``line`` in the background, as its own process (``exec``), then the server check."""
    out = shlex.quote(str(log))
    start = f"( exec {line}\n) >{out} 2>&1 &"
    return f"{start}\ndocs_test_serve $! {out} {shlex.quote(line)}"
