"""Every mistake a newcomer makes in the first minutes ends in a short message and a non-zero
exit, never a traceback: each case runs the real CLI in a subprocess and reads its stderr."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from aio_pika.abc import AbstractConnection

from service.bus.topology import delete_topology
from service.contract.amqp import Topology
from tests.conftest import AMQP_URL
from tests.integration.conftest import free_port

CLOSED_BROKER = "amqp://guest:guest@127.0.0.1:1/"
SEND = ["send", "--instance", "main", "--to", "+33612345678", "--text", "Hi", "--in", "10m"]


def run_cli(
    *argv: str, env: Mapping[str, str] = {}, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MSGFLASH_", "RELAY_"))}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *argv],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_said(result: subprocess.CompletedProcess[str], code: int, *expected: str) -> None:
    """Exit ``code``, each expected text on stderr, at most two lines, no traceback."""
    err = result.stderr
    assert result.returncode == code, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 2, err
    for text in expected:
        assert text in err, err


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("argv", [SEND, ["dlq", "list"], ["topology"]])
def test_an_unreachable_broker_is_one_line_naming_amqp_url(argv: list[str]) -> None:
    result = run_cli(*argv, env={"AMQP_URL": CLOSED_BROKER})
    assert_said(result, 1, "cannot reach the broker at amqp://127.0.0.1:1/", "AMQP_URL")
    assert "guest" not in result.stderr  # the URL is shown without its credentials


@pytest.mark.parametrize("argv", [SEND, ["dlq", "list"]])
def test_a_prefix_never_declared_says_how_to_declare_it(argv: list[str]) -> None:
    env = {"AMQP_URL": AMQP_URL, "RELAY_EXCHANGE_PREFIX": "never-declared-prefix"}
    result = run_cli(*argv, env=env)
    assert_said(
        result, 1, "RELAY_EXCHANGE_PREFIX='never-declared-prefix'", "msgflash-relay topology"
    )


async def test_the_bus_tools_need_no_msgflash_key(prefix: str, amqp: AbstractConnection) -> None:
    result = run_cli("topology", env={"AMQP_URL": AMQP_URL, "RELAY_EXCHANGE_PREFIX": prefix})
    try:
        assert result.returncode == 0, result.stderr
        assert f"exchange  {prefix}.commands" in result.stdout
    finally:
        await delete_topology(amqp, Topology(prefix=prefix))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    result = run_cli("send", "--file", "nope.json", cwd=tmp_path)
    assert_said(result, 2, "--file nope.json: no such file")


def test_a_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "cmd.json").write_text("{to: +33612345678}")
    result = run_cli("send", "--file", "cmd.json", cwd=tmp_path)
    assert_said(result, 2, "--file cmd.json: not JSON")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--to", "0612345678", "--text", "Hi"], "msgflash-relay send: --to: must be an E.164"),
        (["--text", "Hi"], "--to: is required"),
        (["--to", "+33612345678"], "say what to send: --text TEXT, --image URL or --template"),
        (["--to", "+33612345678", "--text", "Hi", "--at", "2020-01-01T08:00:00Z"],
         "--at: 2020-01-01T08:00:00.000Z is in the past"),
        (["--provider", "tether", "--name", "N", "--text", "Hi", "--to", "+14155550133",
          "--at", "2020-01-01T08:00:00Z"], "--at: 2020-01-01T08:00:00.000Z is in the past"),
        (["--to", "+33612345678", "--text", "Hi", "--at", "2030-01-01T08:00:00"],
         "--at: has no UTC offset"),
        (["--campaign", "--instance", "main", "--name", "N", "--text", "Hi"],
         "--at: is required"),
        (["--now", "--at", "2030-01-01T08:00:00Z", "--to", "+33612345678", "--text", "Hi"],
         "argument --at: not allowed with argument --now"),
        (["--to", "+33612345678", "--text", "Hi", "--in", "soon"], "--in: 'soon' is not a delay"),
    ],
)  # fmt: skip
def test_send_names_the_flag_the_user_typed_once(argv: list[str], expected: str) -> None:
    result = run_cli("send", *argv)
    assert_said(result, 2, expected)
    assert result.stderr.count(expected) == 1
    assert "data." not in result.stderr


SANDBOXES = [["sandbox"], ["sandbox", "--provider", "tether"]]


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_sandbox_port_out_of_range(sandbox: list[str]) -> None:
    assert_said(run_cli(*sandbox, "--port", "99999"), 2, "'99999' is not a port: use 0 to 65535")


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_sandbox_port_in_use_says_how_to_pick_another_and_exits_2_as_run_does(
    busy_port: int, sandbox: list[str]
) -> None:
    result = run_cli(*sandbox, "--port", str(busy_port))
    assert_said(
        result, 2, f"msgflash-relay sandbox: port {busy_port} on 127.0.0.1 is already in use",
        "pick another port with --port (0 = any free one)",
    )  # fmt: skip


PORT_SETTINGS = [
    "RELAY_HTTP_PORT", "RELAY_ADMIN_PORT", "RELAY_SANDBOX_PORT", "RELAY_TETHER_SANDBOX_PORT",
]  # fmt: skip


def relay_env(**ports: int) -> dict[str, str]:
    """``make run``'s settings on ports of the test's choosing (and no broker to touch); none
    is a default one, so a relay or another suite running here is left alone."""
    env = {
        "AMQP_URL": CLOSED_BROKER,
        "RELAY_SANDBOX": "1",
        "RELAY_STATE_URL": "memory://",
        "RELAY_HTTP_HOST": "127.0.0.1",
        "RELAY_ADMIN_HOST": "127.0.0.1",
        **{variable: str(free_port()) for variable in PORT_SETTINGS},
    }
    return env | {name.upper(): str(port) for name, port in ports.items()}


@pytest.mark.parametrize("variable", PORT_SETTINGS)
def test_a_second_relay_on_a_busy_port_names_the_variable(busy_port: int, variable: str) -> None:
    result = run_cli("run", env=relay_env(**{variable: busy_port}))
    assert_said(
        result, 2, f"msgflash-relay run: cannot listen on 127.0.0.1:{busy_port} ({variable})",
        "the port is in use", f"set {variable} to a free port",
    )  # fmt: skip


def test_run_without_a_key_or_the_sandbox_names_both() -> None:
    result = run_cli("run")
    assert_said(result, 2, "MSGFLASH_API_KEY is required", "RELAY_SANDBOX=1")
